"""The OpenAPI 3.1 document of a watcher's HTTP API (``GET /openapi.json``)."""

from __future__ import annotations

from typing import Any

from trustmesh import __version__

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_SIZE = {"type": "integer", "minimum": 0, "maximum": 10**19 - 1}  # (at most 19 digits)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "trustmesh watcher",
        "version": __version__,
        "description": "Devices forward receipts for the watcher to hold logs to; peers "
        "compare checkpoints. Errors are RFC 9457 problem+json with a stable type.",
    },
    "paths": {
        "/v1/receipts": {
            "post": {
                "summary": "Hand over receipts: each is checked with its log's keys first",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["receipts"],
                                "properties": {
                                    "receipts": {
                                        "type": "array",
                                        "maxItems": 1000,
                                        "items": {
                                            "type": "object",
                                            "required": ["leaf_hash", "proof"],
                                            "properties": {
                                                "leaf_hash": _HEX32,
                                                "proof": {
                                                    "type": "string",
                                                    "description": "C2SP tlog-proof@v1",
                                                },
                                            },
                                        },
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": _json(
                        {
                            "type": "object",
                            "required": ["held"],
                            "properties": {
                                "held": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "origin": {"type": "string"},
                                            "index": {"type": "integer", "minimum": 0},
                                            "size": {"type": "integer", "minimum": 1},
                                        },
                                    },
                                }
                            },
                        },
                        "The receipts held now (a receipt already anchored is not held)",
                    ),
                    "400": _PROBLEM,
                    "413": _PROBLEM,
                    "415": _PROBLEM,
                    "422": _PROBLEM,
                    "503": _PROBLEM,
                },
            }
        },
        "/v1/checkpoints": {
            "get": {
                "summary": "The latest checkpoint of each log this watcher has seen",
                "responses": {
                    "200": _json(
                        {"type": "object", "additionalProperties": {"type": "string"}},
                        "Signed checkpoints by origin",
                    )
                },
            }
        },
        "/v1/leaves": {
            "get": {
                "summary": "The first ``size`` leaf hashes of this watcher's view of a log",
                "parameters": [
                    {
                        "name": "origin",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {"name": "size", "in": "query", "required": True, "schema": _SIZE},
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["origin", "size", "leaves"],
                            "properties": {
                                "origin": {"type": "string"},
                                "size": {"type": "integer", "minimum": 0},
                                "leaves": {"type": "array", "items": _HEX32},
                            },
                        },
                        "Leaf hashes, hex",
                    ),
                    "400": _PROBLEM,
                    "404": _PROBLEM,
                },
            }
        },
        "/v1/status": {
            "get": {
                "summary": "The logs followed, the alerts raised and the proofs submitted",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["logs", "alerts", "receipts_held", "proofs"],
                            "properties": {
                                "logs": {"type": "object"},
                                "alerts": {"type": "integer", "minimum": 0},
                                "receipts_held": {"type": "integer", "minimum": 0},
                                "proofs": {"type": "array"},
                            },
                        },
                        "Status",
                    )
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
            }
        },
    },
    "components": {
        "schemas": {
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                },
            },
        },
        "responses": {
            "Problem": {
                "description": "RFC 9457 problem details",
                "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            }
        },
    },
}
