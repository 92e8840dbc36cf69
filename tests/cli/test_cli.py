"""The ``trustmesh`` command line, run as a user runs it: the installed console
script in a subprocess, plus an in-process fuzz of ``verify``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cli.command import no_traceback, trustmesh
from tests.conftest import SoftHsmToken
from trustmesh.cli import main
from trustmesh.identity import key_from_did
from trustmesh.reading import verify_reading


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "device.keystore"
    result = trustmesh("device", "new", "--keystore", path)
    assert result.returncode == 0, result.stderr
    return path


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_new_show_sign_verify(tmp_path: Path, alg: str) -> None:
    path = tmp_path / "k"
    new = trustmesh("device", "new", "--alg", alg, "--keystore", path)
    assert new.returncode == 0, new.stderr
    did = new.stdout.decode().strip()
    assert did.startswith("did:key:zDn" if alg == "ES256" else "did:key:z6Mk")
    show = json.loads(trustmesh("device", "show", "--keystore", path).stdout)
    assert show == {"did": did, "alg": alg, "public_key": key_from_did(did).raw.hex()}
    if alg == "ES256":
        assert len(show["public_key"]) == 66  # compressed point
    out = tmp_path / "r.cose"
    sign = trustmesh(
        "device", "sign", "--keystore", path, "--sensor", "temp", "--value", "21.5",
        "--unit", "C", "--out", out,
    )  # fmt: skip
    assert sign.returncode == 0, sign.stderr
    verify = trustmesh("verify", out)
    assert verify.returncode == 0
    result = json.loads(verify.stdout)
    assert result["valid"] is True and result["reason"] is None
    assert (result["did"], result["seq"], result["sensor"], result["value"]) == (
        did,
        1,
        "temp",
        21.5,
    )
    assert {"valid", "did", "seq", "ts", "sensor", "value", "reason"} <= result.keys()


def test_sign_to_stdout_increments_seq_and_keeps_value_types(keystore: Path) -> None:
    values: list[tuple[list[str], Any]] = [
        (["--value", "42"], 42),
        (["--value", "-3.25"], -3.25),
        (["--value", "on"], "on"),
        (["--value", "42", "--text"], "42"),
        (["--value", "nan"], "nan"),
    ]
    seqs = []
    for args, expected in values:
        result = trustmesh("device", "sign", "--keystore", keystore, "--sensor", "s", *args)
        assert result.returncode == 0, result.stderr
        reading = verify_reading(result.stdout)
        assert reading.value == expected and type(reading.value) is type(expected)
        seqs.append(reading.seq)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert (keystore.parent / "device.keystore.seq").exists()


def test_verify_from_stdin_and_invalid_exit_code(keystore: Path) -> None:
    signed = trustmesh("device", "sign", "--keystore", keystore, "--sensor", "s", "--value", "1")
    assert trustmesh("verify", "-", stdin=signed.stdout).returncode == 0
    tampered = bytearray(signed.stdout)
    tampered[-1] ^= 1
    result = trustmesh("verify", "-", stdin=bytes(tampered))
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["valid"] is False
    assert document["reason"].startswith("signature:")
    assert (
        document["did"]
        == json.loads(trustmesh("device", "show", "--keystore", keystore).stdout)["did"]
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["verify", "/nonexistent/file"], 2, "cannot read"),
        (["verify"], 2, "Missing argument"),
        (["verify", "a", "b"], 2, "unexpected extra argument"),
        (["device", "new"], 2, "exactly one of --keystore PATH or --pkcs11 URI"),
        (
            ["device", "new", "--keystore", "k", "--pkcs11", "pkcs11:token=a;object=b"],
            2,
            "exactly one",
        ),
        (["device", "new", "--keystore", "{tmp}/k", "--alg", "RS256"], 2, "unknown algorithm"),
        (["device", "show", "--keystore", "/nonexistent"], 1, "cannot read keystore"),
        (["device", "sign", "--keystore", "{tmp}/k", "--value", "1"], 2, "Missing option"),
        (["device", "new", "--pkcs11", "nonsense"], 1, "not a PKCS#11 URI"),
        (["nosuchcommand"], 2, "No such command"),
    ],
)
def test_usage_and_input_errors_are_clear(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = trustmesh(*[arg.format(tmp=tmp_path) for arg in args])
    no_traceback(result)
    assert result.returncode == code, result.stderr
    assert message in result.stderr.decode()


def test_verify_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = trustmesh("verify", tmp_path)
    no_traceback(result)
    assert result.returncode == 2


def test_wrong_password_and_missing_password(keystore: Path) -> None:
    wrong = trustmesh("device", "sign", "--keystore", keystore, "--sensor", "s", "--value", "1",
                      env={"TRUSTMESH_PASSWORD": "nope"})  # fmt: skip
    no_traceback(wrong)
    assert wrong.returncode == 1
    assert "wrong password" in wrong.stderr.decode()
    env = {k: v for k, v in os.environ.items() if k != "TRUSTMESH_PASSWORD"}
    missing = subprocess.run(
        [sys.executable, "-m", "trustmesh", "device", "sign", "--keystore", str(keystore),
         "--sensor", "s", "--value", "1"],
        env=env, capture_output=True, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    no_traceback(missing)
    assert missing.returncode == 2
    assert "TRUSTMESH_PASSWORD" in missing.stderr.decode()


def test_new_refuses_to_overwrite(keystore: Path) -> None:
    before = keystore.read_bytes()
    result = trustmesh("device", "new", "--keystore", keystore)
    assert result.returncode == 1
    assert "already exists" in result.stderr.decode()
    assert keystore.read_bytes() == before


@pytest.mark.softhsm
@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_pkcs11_device(softhsm: SoftHsmToken, tmp_path: Path, alg: str) -> None:
    env = {"SOFTHSM2_CONF": str(softhsm.conf)}
    uri = softhsm.uri(f"cli-{alg}")
    new = trustmesh("device", "new", "--alg", alg, "--pkcs11", uri, env=env)
    assert new.returncode == 0, new.stderr
    did = new.stdout.decode().strip()
    show = json.loads(trustmesh("device", "show", "--pkcs11", uri, env=env).stdout)
    assert show["did"] == did and show["alg"] == alg
    seq_file = tmp_path / "seq"
    for expected_seq in (1, 2):
        signed = trustmesh(
            "device", "sign", "--pkcs11", uri, "--sensor", "t", "--value", "5",
            "--seq-file", seq_file, env=env,
        )  # fmt: skip
        assert signed.returncode == 0, signed.stderr
        reading = verify_reading(signed.stdout)
        assert (reading.did, reading.seq) == (did, expected_seq)


def test_demo_and_version(tmp_path: Path) -> None:
    demo = trustmesh("demo", "--dir", tmp_path / "demo")
    assert demo.returncode == 0, demo.stderr
    assert "one flipped bit is caught" in demo.stderr.decode()
    assert trustmesh("verify", tmp_path / "demo" / "reading-1.cose").returncode == 0
    version = trustmesh("--version")
    assert version.stdout.decode().startswith("trustmesh ")


def test_bench_verify_json_shape() -> None:
    result = trustmesh("bench", "verify", "--json", "--readings", "20", "--rounds", "1")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    for alg in ("es256", "eddsa"):
        row = document[alg]
        assert row["trustmesh_per_s"] > 0 and row[f"{row['baseline']}_per_s"] > 0
        assert row["ratio"] == pytest.approx(
            row["trustmesh_per_s"] / row[f"{row['baseline']}_per_s"], rel=0.01
        )
    assert document["eddsa"]["baseline"] in {"cryptography", "pynacl"}


# --- in-process fuzz: no input makes `trustmesh verify` raise -----------------


@pytest.fixture
def fuzz_file(tmp_path: Path) -> Path:
    return tmp_path / "input.cose"


def _run_main(argv: list[str]) -> int:
    saved = sys.argv
    sys.argv = ["trustmesh", *argv]
    try:
        main()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        sys.argv = saved
    return 0


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600) | st.sampled_from([b"\xd2\x84", b"\x84\x40\xa0\x40\x40"]))
def test_verify_never_raises_on_any_input(
    fuzz_file: Path, data: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    fuzz_file.write_bytes(data)
    code = _run_main(["verify", str(fuzz_file)])
    out = capsys.readouterr()
    assert code == 1
    assert json.loads(out.out)["valid"] is False
    assert "Traceback" not in out.err


def test_bench_log_json_shape() -> None:
    result = trustmesh("bench", "log", "--json", "--entries", "3000")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    for key in (
        "append_per_s",
        "bytes_per_entry",
        "proof_p50_ms",
        "proof_p99_ms",
        "pymerkle_append_per_s",
        "pymerkle_proof_p99_ms",
        "append_per_s_first_1e4",
        "append_per_s_last_1e4",
        "indexed_append_per_s",
        "indexed_append_per_s_first_1e4",
        "indexed_append_per_s_last_1e4",
    ):
        assert document[key] > 0, key
    assert document["indexed_append_ratio_vs_plain"] == pytest.approx(
        document["indexed_append_per_s"] / document["append_per_s"], rel=0.02
    )
    assert document["append_ratio_vs_pymerkle"] == pytest.approx(
        document["append_per_s"] / document["pymerkle_append_per_s"], rel=0.01
    )


def test_bench_chain_json_shape() -> None:
    result = trustmesh("bench", "chain", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document["gas"]["anchor"]) == {"2^10", "2^20", "2^32"}
    for key in ("register", "batch_register_per_device", "rotate", "revoke"):
        assert document["gas"][key] > 21_000
    assert document["gas_per_reading"] == pytest.approx(
        document["gas"]["anchor"]["2^20"] / 10_000, abs=0.01
    )
    assert document["embedded_tx_per_s"] > 0
    assert document["in_memory_eth_tester_tx_per_s"] > 0


def test_bench_ingest_json_shape() -> None:
    result = trustmesh("bench", "ingest", "--json", "--readings", "800", "--devices", "8")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    for key in ("http_readings_per_s", "raw_verify_per_s", "p99_ms", "rss_mb"):
        assert document[key] > 0, key
    assert document["http_readings"] == 800
    before, after = document["raw_verify_per_s_before_after"]  # the baseline brackets the run
    assert min(before, after) <= document["raw_verify_per_s"] <= max(before, after)
    assert document["ratio"] == pytest.approx(  # printed to three decimals
        document["http_readings_per_s"] / document["raw_verify_per_s"], abs=5e-4
    )
    assert "mqtt_readings_per_s" in document
    assert document["mqtt_refused"] == {}  # MQTT readings reach the log in seq order
    assert 0 < document["raw_verify_and_receipt_per_s"] < document["raw_verify_per_s"]
    # one checkpoint per batch, each reading's receipt a tlog-proof of some hundred bytes
    assert document["checkpoints_signed_per_s"] > 0
    assert 1 <= document["readings_per_checkpoint"] <= 800
    assert 300 < document["receipt_bytes_per_reading"] < document["answer_bytes_per_reading"]
    assert document["mqtt_ratio"] == pytest.approx(
        document["mqtt_readings_per_s"] / document["raw_verify_per_s"], abs=5e-4
    )
    assert document["ratio_vs_verify_and_receipt"] == pytest.approx(
        document["http_readings_per_s"] / document["raw_verify_and_receipt_per_s"], abs=5e-4
    )
    cpu = document["cpu_us_per_reading"]
    assert cpu["node"] > 0 and cpu["node_workers"] > 0 and cpu["one_verify"] > 0
    assert 0 < cpu["node_event_loop"] <= cpu["node"]  # one of the node's threads
    assert len(document["rss_mb_by_fifth"]) == 5
    assert len(document["http_readings_per_s_by_fifth"]) == 5  # the load, steady or not
    assert sum(document["http_readings_per_s_by_fifth"]) > 0
