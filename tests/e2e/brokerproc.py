"""Start and stop the broker under test: midge, or Debian's mosquitto.

Both are driven through one `Broker` class so that every end-to-end test can
run against either. midge is started with `--mqtt 127.0.0.1:0` and announces
its port on stdout (`midge listening mqtt://HOST:PORT`); mosquitto gets a
generated config file on a free port and is ready once the port accepts.

Tests pass broker options by their generic names (`sys_interval`,
`max_packet_size`, ...); `Broker` maps them to midge flags or mosquitto config
lines. Only the process this object started is ever signalled.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

LISTEN_RE = re.compile(r"^midge listening mqtt://([0-9.]+):(\d+)\s*$")

# generic option -> (midge flag, mosquitto config key)
OPTIONS = {
    "sys_interval": ("--sys-interval", "sys_interval"),
    "max_keepalive": ("--max-keepalive", "max_keepalive"),
    "max_connections": ("--max-connections", "max_connections"),
    "max_packet_size": ("--max-packet-size", "max_packet_size"),
    "max_queued": ("--max-queued", "max_queued_messages"),
    "max_inflight": ("--max-inflight", "max_inflight_messages"),
}


class BrokerError(RuntimeError):
    """The broker did not start, or died."""


def broker_kind() -> str:
    """'midge' (default) or 'mosquitto', from E2E_BROKER."""
    kind = os.environ.get("E2E_BROKER", "midge").strip().lower()
    if kind not in ("midge", "mosquitto"):
        raise BrokerError(f"E2E_BROKER must be 'midge' or 'mosquitto', not {kind!r}")
    return kind


def midge_bin() -> str:
    return os.environ.get("MIDGE_BIN", str(REPO_ROOT / "target" / "debug" / "midge"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One broker process (restartable), its data dir and its log."""

    def __init__(self, kind: str, workdir: Path, extra_args: list[str] | None = None,
                 persistence: bool = False, **options):
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise BrokerError(f"unknown broker options: {sorted(unknown)}")
        self.kind = kind
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.extra_args = list(extra_args or [])
        self.persistence = persistence
        self.options = options
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.listeners: list[tuple[str, int]] = []
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.returncodes: list[int] = []
        self._stdout_lines: queue.Queue[str | None] = queue.Queue()
        self._stdout_all: list[str] = []
        self._fixed_port: int | None = None

    # ----------------------------------------------------------------- info
    @property
    def is_midge(self) -> bool:
        return self.kind == "midge"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.kind}-{self.starts}.log"

    def logs(self) -> str:
        """stderr of every start of this broker (and stdout lines), for reports."""
        parts = []
        for i in range(1, self.starts + 1):
            p = self.workdir / f"{self.kind}-{i}.log"
            try:
                text = p.read_text(errors="replace")
            except OSError:
                continue
            if len(text) > 20000:
                text = "...(cut)...\n" + text[-20000:]
            parts.append(f"--- {self.kind} start #{i} stderr ---\n{text}")
        if self._stdout_all:
            parts.append("--- stdout ---\n" + "".join(self._stdout_all[-200:]))
        return "\n".join(parts)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "Broker":
        if self.alive():
            raise BrokerError("broker already running")
        self.starts += 1
        if self.kind == "midge":
            self._start_midge()
        else:
            self._start_mosquitto()
        return self

    def _start_midge(self) -> None:
        binary = midge_bin()
        if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
            raise BrokerError(f"midge binary not found at {binary} (build it or set MIDGE_BIN)")
        # A restart listens where the first start did, as mosquitto's does:
        # clients that reconnect find the broker again.
        mqtt = f"127.0.0.1:{self.port}" if self.starts > 1 and self.port else "127.0.0.1:0"
        args = [binary, "serve", "--mqtt", mqtt, "--data-dir", str(self.data_dir)]
        for name, value in self.options.items():
            args += [OPTIONS[name][0], str(value)]
        args += self.extra_args
        self._spawn(args)
        self.listeners = []
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._abort(f"no 'midge listening' line within {START_TIMEOUT}s")
            try:
                line = self._stdout_lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if not self.alive():
                    self._abort(f"midge exited with {self.proc.returncode} before listening")
                continue
            if line is None:
                self._abort(f"midge closed stdout (exit {self.proc.poll()}) before listening")
            m = LISTEN_RE.match(line)
            if m:
                self.listeners.append((m.group(1), int(m.group(2))))
                # one --mqtt flag is passed by us; extra ones come from extra_args
                if len(self.listeners) >= 1 + self.extra_args.count("--mqtt"):
                    break
        self.host, self.port = self.listeners[0]

    def _start_mosquitto(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(exe):
            raise BrokerError("mosquitto not installed (scripts/test installs it)")
        # Same port across restarts, so clients of a restarted broker find it.
        if self._fixed_port is None:
            self._fixed_port = free_port()
        port = self._fixed_port
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true"]
        if os.geteuid() == 0:
            # as root mosquitto drops to user 'mosquitto', which cannot write
            # into pytest's private (0700) temporary directory
            lines.append("user root")
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.data_dir}/",
                      "autosave_interval 0"]
        else:
            lines.append("persistence false")
        lines += ["log_dest stderr", "log_type all", "log_timestamp true"]
        for name, value in self.options.items():
            lines.append(f"{OPTIONS[name][1]} {value}")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        self._spawn([exe, "-c", str(conf)])
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if not self.alive():
                self._abort(f"mosquitto exited with {self.proc.returncode} before listening")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self._abort(f"mosquitto not accepting on {port} within {START_TIMEOUT}s")
                # polling a port that is not open yet: the only readiness signal mosquitto gives
                time.sleep(0.05)
        self.host, self.port = "127.0.0.1", port
        self.listeners = [(self.host, port)]

    def _spawn(self, args: list[str]) -> None:
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                cwd=self.workdir, text=True, bufsize=1,
                env={**os.environ, "RUST_BACKTRACE": "1"},
            )
        finally:
            log.close()
        lines: queue.Queue[str | None] = queue.Queue()
        self._stdout_lines = lines
        proc = self.proc

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self._stdout_all.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, name="broker-stdout", daemon=True).start()

    def _abort(self, why: str) -> None:
        self.kill()
        raise BrokerError(f"{self.kind} did not start: {why}\n{self.logs()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
        """Signal our process, wait for it; SIGKILL if it does not exit in time.

        Returns the exit code (None if it was not running)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
                self.returncodes.append(proc.returncode)
                self.proc = None
                raise BrokerError(f"{self.kind} (pid {proc.pid}) ignored signal {sig} for {timeout}s")
        rc = proc.returncode
        self.returncodes.append(rc)
        self.proc = None
        return rc

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None

    def restart(self) -> "Broker":
        rc = self.stop()
        if rc not in (0, None):
            raise BrokerError(f"{self.kind} exited with {rc} on SIGTERM\n{self.logs()}")
        return self.start()
