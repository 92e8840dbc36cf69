"""Batched signature checks give the same verdicts in this process and across a
process pool (in order, over several parts), and name the reason for each failure."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from trustmesh.batch_verify import PART, item, verify_in_pool, verify_items
from trustmesh.identity import Alg, SoftwareSigner
from trustmesh.reading import parse_reading, sign_reading


def test_pool_and_in_process_agree() -> None:
    signers = [SoftwareSigner.generate(), SoftwareSigner.generate(Alg.EDDSA)]
    items = []
    for n in range(PART + 7):  # more than one part
        signer = signers[n % 2]
        entry = sign_reading(signer, seq=n + 1, ts=1, sensor="t", value=n)
        if n % 5 == 0:  # every fifth: a flipped signature bit
            entry = entry[:-1] + bytes([entry[-1] ^ 1])
        items.append(item(parse_reading(entry), signer.public_key))
    here = verify_items(items)
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        there = verify_in_pool(pool, items)
    assert here == there
    assert [n for n, verdict in enumerate(here) if verdict is not None] == list(
        range(0, PART + 7, 5)
    )
    assert {verdict for verdict in here if verdict} == {
        "ES256 signature does not verify",
        "Ed25519 signature does not verify",
    }
