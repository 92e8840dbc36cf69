"""Real services for integration tests, each on a free loopback port in a
temporary directory, stopped when the test session ends.

scripts/test installs the Debian packages; a test that needs a service fails
(never skips) when it is missing, so a green run means it really ran.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def wait_until(
    condition: Callable[[], object], what: str, seconds: float = 60, pause: float = 0.1
) -> None:
    """Check ``condition`` every ``pause`` seconds until it holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(pause)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _postgres_bin() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        pytest.fail("PostgreSQL is not installed: run scripts/test, or apt-get install postgresql")
    return Path(candidates[-1]).parent


class Postgres:
    """A throwaway PostgreSQL cluster in ``root`` on ``port``, which a test may
    stop (as a crash: immediate mode) and start again on the same data."""

    def __init__(self) -> None:
        self.bindir = _postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="trustmesh-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            postgres = pwd.getpwnam("postgres")
            os.chown(self.root, postgres.pw_uid, postgres.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data, self.port = self.root / "data", free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/trustmesh"

    def create(self) -> None:
        subprocess.run(
            [*self.as_user, self.bindir / "initdb", "-D", self.data, "-U", "postgres", "-A",
             "trust", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.start()
        subprocess.run(
            [*self.as_user, self.bindir / "createdb", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "trustmesh"],
            check=True, capture_output=True,
        )  # fmt: skip

    def start(self) -> None:
        # A small WAL cap: the default lets a busy test cluster grow its WAL to 1 GB on disk.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on"
            " -c max_wal_size=64MB -c min_wal_size=32MB"
        )
        subprocess.run(
            [*self.as_user, self.bindir / "pg_ctl", "-D", self.data, "-o", options, "-l",
             self.root / "log", "-w", "-t", "60", "start"],
            check=True, capture_output=True,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop at once, as a crash would (recovery replays the WAL at the next start)."""
        subprocess.run(
            [*self.as_user, self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w",
             "stop"],
            capture_output=True, check=False,
        )  # fmt: skip

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL server with database ``trustmesh``, removed after."""
    server = Postgres()
    try:
        server.create()
        yield server
    finally:
        server.remove()


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server; yields a ``postgresql://`` URL to database ``trustmesh``."""
    with postgres() as server:
        yield server.url


MAX_PERSISTED_STATES = 64  # 3+ MB each by the suite's end; older blocks' states are dropped
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_BIN = Path(__file__).resolve().parent.parent / ".tools" / "node_modules" / ".bin" / "anvil"


@contextlib.contextmanager
def _json_rpc_process(
    command: list[str], port: int, name: str, seconds: float, log: Path | None = None
) -> Iterator[str]:
    """Run ``command`` (a JSON-RPC server on ``port``) until it answers
    ``eth_chainId`` on 127.0.0.1; yields its URL; stops it on leaving."""
    import requests

    sink = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            said = log.read_text()[-2000:] if log is not None else ""
            pytest.fail(f"{name} did not start {said}")
        try:
            answer = requests.post(
                url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=2
            )
            return bool(answer.ok)
        except requests.RequestException:
            return False

    try:
        wait_until(answers, f"{name} to answer", seconds=seconds, pause=0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        if log is not None:
            sink.close()  # type: ignore[union-attr]


@contextlib.contextmanager
def anvil_node(port: int | None = None, state: Path | None = None) -> Iterator[str]:
    """A fresh anvil (npm @foundry-rs/anvil, installed by scripts/test) on a free
    loopback port, with its default hardfork (osaka: P256VERIFY at 0x100).
    With ``state``, the chain is loaded from and saved to that file."""

    binary = os.environ.get("TRUSTMESH_ANVIL") or str(ANVIL_BIN)
    if not Path(binary).exists():
        pytest.fail("anvil is not installed: run scripts/test (npm @foundry-rs/anvil)")
    port = port or free_port()
    extra = ["--state", str(state)] if state is not None else []
    # anvil moves the states of older blocks to disk, by default to ~/.foundry/anvil/tmp,
    # unbounded and never removed: ~5 GB a suite run, which filled CI's disk. Here they go
    # to a directory removed with the node, at most the last MAX_PERSISTED_STATES of them.
    with tempfile.TemporaryDirectory(prefix="trustmesh-anvil-") as cache:
        command = [binary, "--host", "127.0.0.1", "--port", str(port), "--silent",
                   "--cache-path", cache, "--max-persisted-states", str(MAX_PERSISTED_STATES),
                   *extra]  # fmt: skip
        with _json_rpc_process(command, port, "anvil", seconds=60) as url:
            yield url


ALTO_JS = (
    Path(__file__).resolve().parent.parent
    / ".tools" / "node_modules" / "@pimlico" / "alto" / "esm" / "cli" / "alto.js"
)  # fmt: skip


@contextlib.contextmanager
def alto_bundler(rpc_url: str, executor_key: str, utility_key: str) -> Iterator[str]:
    """Pimlico's Alto bundler (npm @pimlico/alto, installed by scripts/test) in
    front of the chain at ``rpc_url``, for the EntryPoint v0.8 already deployed
    there. Alto listens on every interface (it has no host option): it is only
    ever spoken to on 127.0.0.1, on a free port."""

    node = shutil.which("node")
    if node is None or not ALTO_JS.is_file():
        pytest.fail("Alto is not installed: run scripts/test (npm @pimlico/alto)")
    port = free_port()
    command = [
        node, str(ALTO_JS), "--entrypoints", "0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108",
        "--executor-private-keys", executor_key, "--utility-private-key", utility_key,
        "--rpc-url", rpc_url, "--safe-mode", "false", "--port", str(port),
        "--max-gas-per-bundle", "10000000", "--log-level", "warn",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="trustmesh-alto-") as directory:
        log = Path(directory) / "alto.log"
        with _json_rpc_process(command, port, "Alto", seconds=90, log=log) as url:
            yield url


class Mosquitto:
    """A Mosquitto broker (Debian ``mosquitto``, installed by scripts/test) on a
    free loopback port, without persistence, which a test may stop and start."""

    def __init__(self) -> None:
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(self.binary).exists():
            pytest.fail(
                "Mosquitto is not installed: run scripts/test, or apt-get install mosquitto"
            )
        self.root = Path(tempfile.mkdtemp(prefix="trustmesh-mqtt-"))
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = self.root / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        process = self.process = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def accepts() -> bool:
            if process.poll() is not None:
                pytest.fail("mosquitto did not start")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(accepts, "mosquitto to accept connections", seconds=30, pause=0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@contextlib.contextmanager
def mosquitto() -> Iterator[Mosquitto]:
    """A running :class:`Mosquitto`, removed after."""
    broker = Mosquitto()
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.root, ignore_errors=True)


@contextlib.contextmanager
def mosquitto_broker() -> Iterator[str]:
    """A Mosquitto broker on a free loopback port; yields ``mqtt://127.0.0.1:PORT``."""
    with mosquitto() as broker:
        yield broker.url


class Volume:
    """A small tmpfs the test mounts (as root, or with ``sudo -n``, as scripts/test
    installs packages): a disk that fills up, and that :meth:`resize` gives room."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        self.sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        path.mkdir(parents=True, exist_ok=True)
        self._mount(["-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)])

    def _mount(self, args: list[str]) -> None:
        done = subprocess.run(
            [*self.sudo, "mount", *args], check=False, capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.fail(f"cannot mount a tmpfs (root or sudo -n is needed): {done.stderr}")

    def resize(self, size: str) -> None:
        self._mount(["-o", f"remount,size={size}", str(self.path)])

    def unmount(self) -> None:
        subprocess.run([*self.sudo, "umount", "-l", str(self.path)], check=False)


@contextlib.contextmanager
def volume(path: Path, size: str) -> Iterator[Volume]:
    """A :class:`Volume` of ``size`` (``2m``) at ``path``, unmounted after."""
    mounted = Volume(path, size)
    try:
        yield mounted
    finally:
        mounted.unmount()


class FakeClock:
    """A wall clock a test moves for the processes it starts: libfaketime (Debian
    ``faketime``, installed by scripts/test) preloaded, reading its offset from a
    file at most once a second. Monotonic clocks are left alone, as a real clock
    step leaves them."""

    LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")

    def __init__(self, directory: Path) -> None:
        if not self.LIBRARY.exists():
            pytest.fail("libfaketime is not installed: run scripts/test (apt-get install faketime)")
        self.file = directory / "faketime"
        self.set("+0")
        self.env = {
            "LD_PRELOAD": str(self.LIBRARY),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_CACHE_DURATION": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def set(self, offset: str) -> None:
        """The offset from the real clock, as libfaketime writes it: ``+1h``, ``-1h``."""
        self.file.write_text(offset + "\n")


def fresh_database(server_url: str) -> str:
    """A new, empty database on the test PostgreSQL server; its URL."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


class CutLink:
    """A TCP relay from a free loopback port to ``target_port``, which a test can
    cut (open connections closed, new ones closed at once) and restore: a chain, or
    any service, that one client cannot reach for a while, as on a real network."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._cut = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
            with self._lock:
                self._open -= {source, sink}

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            for end in self._open:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        self._listener.close()
