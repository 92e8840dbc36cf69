"""RFC 9457 problem details: a stable ``type`` per error, the documented status.

A client gets the type, a short title and the precise detail of *its* request;
operators get the same in the logs. Nothing a client sends yields a 500.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from trustmesh.errors import InvalidReading

PROBLEM_BASE = "https://trustmesh.dev/problems/"
MEDIA_TYPE = "application/problem+json"

# slug: (status, title)
PROBLEMS: dict[str, tuple[int, str]] = {
    "bad-cbor": (400, "Malformed CBOR"),
    "wrong-structure": (400, "Not a COSE_Sign1 reading"),
    "unknown-alg": (400, "Unsupported algorithm"),
    "kid-not-did": (400, "kid is not a supported did:key"),
    "missing-field": (400, "Missing payload field"),
    "bad-field": (400, "Invalid payload field"),
    "bad-request": (400, "Bad request"),
    "unknown-device": (401, "Unknown device"),
    "revoked-device": (401, "Revoked device"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "replay": (409, "Replayed sequence number"),
    "equivocation": (409, "Equivocation"),
    "oversized": (413, "Too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "signature": (422, "Bad signature"),
    "bad-receipt": (422, "Not a receipt of a followed log"),
    "clock": (422, "Timestamp outside the clock window"),
    "over-capacity": (429, "Over capacity"),
    "not-implemented": (501, "Not implemented"),
    "store-unavailable": (503, "Store unavailable"),
    "chain-unavailable": (503, "Chain unavailable"),
}


class Problem(Exception):
    """A refusal to send back as problem+json."""

    def __init__(self, slug: str, detail: str) -> None:
        if slug not in PROBLEMS:
            raise ValueError(f"unknown problem type {slug!r}")
        super().__init__(f"{slug}: {detail}")
        self.slug = slug
        self.detail = detail

    @property
    def status(self) -> int:
        return PROBLEMS[self.slug][0]

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": PROBLEMS[self.slug][1],
            "status": self.status,
            "detail": self.detail,
        }

    @classmethod
    def from_reading(cls, error: InvalidReading) -> Problem:
        return cls(error.reason, str(error))


def problem_response(problem: Problem) -> JSONResponse:
    headers = {"Retry-After": "1"} if problem.status in (429, 503) else None
    return JSONResponse(problem.to_json(), problem.status, headers=headers, media_type=MEDIA_TYPE)


async def on_problem(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: a raised Problem, as problem+json."""
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def on_http(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: routing's 404 and 405 (and the rest) as problem+json."""
    assert isinstance(exc, HTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "bad-request")
    return problem_response(Problem(slug, str(exc.detail)))
