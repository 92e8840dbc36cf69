"""The OpenAPI 3.1 document of the node's HTTP API (``GET /openapi.json``)."""

from __future__ import annotations

from typing import Any

from trustmesh import __version__

_PROBLEM = {"$ref": "#/components/responses/Problem"}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(status): _PROBLEM for status in statuses}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_INDEX = {"type": "integer", "minimum": 0, "maximum": (1 << 64) - 1}
_DID = {"type": "string", "pattern": "^did:key:z[1-9A-HJ-NP-Za-km-z]+$"}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "trustmesh node",
        "version": __version__,
        "description": "Signed readings in, receipts and proofs out. Errors are RFC 9457 "
        "problem+json with a stable type.",
    },
    "paths": {
        "/v1/readings": {
            "post": {
                "summary": "Submit one reading (application/cose) or many (application/cbor-seq)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/cose": {"schema": {"type": "string", "format": "binary"}},
                        "application/cbor-seq": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "responses": {
                    "200": {
                        "description": "A receipt, or an array of receipts and problems",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Receipt"},
                                        {
                                            "type": "array",
                                            "items": {
                                                "oneOf": [
                                                    {"$ref": "#/components/schemas/Receipt"},
                                                    {"$ref": "#/components/schemas/Problem"},
                                                ]
                                            },
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    **_problems(400, 401, 409, 413, 415, 422, 429, 503),
                },
            }
        },
        "/v1/log": {
            "get": {
                "summary": "What this log is: origin, verifier key, size, epoch, chain",
                "responses": {"200": _json({"$ref": "#/components/schemas/LogInfo"}, "The log")},
            }
        },
        "/v1/checkpoint": {
            "get": {
                "summary": "The latest signed checkpoint (C2SP tlog-checkpoint)",
                "responses": {
                    "200": {
                        "description": "Signed note",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/v1/entries/{index}": {
            "get": {
                "summary": "One log entry, the COSE_Sign1 reading as received",
                "parameters": [{"name": "index", "in": "path", "required": True, "schema": _INDEX}],
                "responses": {
                    "200": {
                        "description": "The entry",
                        "content": {
                            "application/cose": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    **_problems(400, 404),
                },
            }
        },
        "/v1/proof/inclusion": {
            "get": {
                "summary": "RFC 9162 inclusion proof",
                "parameters": [
                    {"name": "index", "in": "query", "required": True, "schema": _INDEX},
                    {
                        "name": "size",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    },
                ],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/InclusionProof"}, "The proof"),
                    **_problems(400, 404),
                },
            }
        },
        "/v1/proof/consistency": {
            "get": {
                "summary": "RFC 9162 consistency proof",
                "parameters": [
                    {"name": "from", "in": "query", "required": True, "schema": _INDEX},
                    {"name": "to", "in": "query", "required": True, "schema": _INDEX},
                ],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/ConsistencyProof"}, "The proof"),
                    **_problems(400, 404),
                },
            }
        },
        "/v1/devices/{did}": {
            "get": {
                "summary": "A device's registry record",
                "parameters": [{"name": "did", "in": "path", "required": True, "schema": _DID}],
                "responses": {
                    "200": _json({"type": "object"}, "The record"),
                    **_problems(400, 404, 503),
                },
            }
        },
        "/v1/devices/{did}/readings": {
            "get": {
                "summary": "A device's logged readings, each as a proof bundle "
                "(trustmesh-proof-bundle/v1: entry, inclusion in the signed checkpoint, anchor)",
                "parameters": [
                    {"name": "did", "in": "path", "required": True, "schema": _DID},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {"name": "seq", "in": "query", "schema": _INDEX},
                ],
                "responses": {"200": _json({"type": "object"}, "Readings"), **_problems(400, 404)},
            }
        },
        "/v1/evidence": {
            "get": {
                "summary": "Equivocation evidence the node holds",
                "responses": {"200": _json({"type": "object"}, "Evidence")},
            }
        },
        "/v1/aggregates": {
            "post": {
                "summary": "Keep an aggregate claim's published data (CBOR) under its claim id",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/cbor": {"schema": {"type": "string", "format": "binary"}}
                    },
                },
                "responses": {
                    "201": _json({"type": "object"}, "Kept: the claim id and its path"),
                    **_problems(400, 413, 415),
                },
            }
        },
        "/v1/aggregates/{claim_id}": {
            "get": {
                "summary": "A kept aggregate claim's data (CBOR)",
                "parameters": [
                    {
                        "name": "claim_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The claim's data",
                        "content": {
                            "application/cbor": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    **_problems(400, 404),
                },
            }
        },
        "/v1/reputation": {
            "get": {
                "summary": "Every reputation epoch's cut (entries, stake block) and table roots",
                "responses": {"200": _json({"type": "object"}, "Epochs"), **_problems(501)},
            }
        },
        "/v1/reputation/epochs/{epoch}": {
            "get": {
                "summary": "An epoch's whole table as published: every row's committed fields",
                "parameters": [{"name": "epoch", "in": "path", "required": True, "schema": _INDEX}],
                "responses": {
                    "200": _json({"type": "object"}, "Table"),
                    **_problems(400, 404, 501),
                },
            }
        },
        "/v1/reputation/{id}": {
            "get": {
                "summary": "A score (by DID or 64-hex subject id): its explanation and proof",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "epoch", "in": "query", "schema": _INDEX},
                ],
                "responses": {
                    "200": _json({"type": "object"}, "Score"),
                    **_problems(400, 404, 501),
                },
            }
        },
        "/checkpoint": {
            "get": {
                "summary": "C2SP tlog-tiles checkpoint",
                "responses": {
                    "200": {
                        "description": "Signed note",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                },
            },
            "Receipt": {
                "type": "object",
                "required": ["index", "leaf_hash", "size", "proof"],
                "properties": {
                    "origin": {"type": "string"},
                    "did": {"type": "string"},
                    "seq": {"type": "integer"},
                    "index": _INDEX,
                    "leaf_hash": {"type": "string", "description": "RFC 9162 leaf hash, hex"},
                    "size": {
                        "type": "integer",
                        "description": "the size of the signed tree the proof is in",
                    },
                    "proof": {
                        "type": "string",
                        "description": "C2SP tlog-proof@v1: the index, the RFC 9162 inclusion "
                        "hashes and the checkpoint the log signed (with both its keys)",
                    },
                    "duplicate": {"type": "boolean"},
                },
            },
            "LogInfo": {
                "type": "object",
                "required": [
                    "origin",
                    "verifier_key",
                    "proof_key",
                    "size",
                    "epoch_seconds",
                    "chain_id",
                    "contracts",
                ],
                "properties": {
                    "origin": {"type": "string"},
                    "verifier_key": {"type": "string"},
                    "proof_key": {
                        "type": "string",
                        "description": "P-256 verifier key (C2SP type 0x02) of the second "
                        "signature on checkpoints, the one the chain checks",
                    },
                    "size": _INDEX,
                    "epoch_seconds": {"type": "number"},
                    "chain_id": {"type": "integer"},
                    "contracts": {"type": "object"},
                },
            },
            "InclusionProof": {
                "type": "object",
                "required": ["index", "size", "hashes"],
                "properties": {
                    "index": _INDEX,
                    "size": _INDEX,
                    "hashes": {"type": "array", "items": {"type": "string"}},
                },
            },
            "ConsistencyProof": {
                "type": "object",
                "required": ["from", "to", "hashes"],
                "properties": {
                    "from": _INDEX,
                    "to": _INDEX,
                    "hashes": {"type": "array", "items": {"type": "string"}},
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
