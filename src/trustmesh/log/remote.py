"""Reading a log over its public HTTP API: entries from C2SP entry bundles."""

from __future__ import annotations

import httpx

from trustmesh.log.bundles import BUNDLE_SIZE, decode_bundle
from trustmesh.log.tiles import tile_index

__all__ = ["bundled_entries"]


def bundled_entries(http: httpx.Client, url: str, start: int, end: int) -> list[bytes] | None:
    """Entries ``start..end-1`` of the log at ``url``, from its entry bundles
    (``/tile/entries/…``, partial ones for the last); None if it serves no tiles.
    Raises :class:`httpx.HTTPError` or ValueError (a bundle of the wrong width)."""
    entries: list[bytes] = []
    for bundle in range(start // BUNDLE_SIZE, (end - 1) // BUNDLE_SIZE + 1 if end else 0):
        width = min(BUNDLE_SIZE, end - bundle * BUNDLE_SIZE)
        path = tile_index(bundle) + (f".p/{width}" if width < BUNDLE_SIZE else "")
        answer = http.get(f"{url}/tile/entries/{path}")
        if answer.status_code == 404 and bundle == start // BUNDLE_SIZE and not entries:
            return None
        answer.raise_for_status()
        decoded = decode_bundle(answer.content)
        if len(decoded) != width:
            raise ValueError(f"entry bundle {bundle} has {len(decoded)} entries, not {width}")
        entries += decoded[max(start - bundle * BUNDLE_SIZE, 0) :]
    return entries
