"""A local service started without Docker: PID file, detached start, health wait, stop by PID.

Contract of every :class:`Service`:

* ``up()`` starts the process detached (its own session, stdout/stderr to ``<run_dir>/logs/<name>.out``), writes
  ``<run_dir>/<name>.pid`` and returns once the service answers its health probe. Already running (our PID file,
  live process) → nothing is started. A port held by a process we did not start → :class:`PortInUseError`,
  unless that process answers the health probe, in which case it is reported as ``external`` and left alone.
  A process that exits or does not answer within ``start_timeout_s`` is stopped and :class:`ServiceStartError`
  carries the tail of its logs.
* ``down()`` stops only what ``up()`` started: the PID in the PID file, SIGTERM, then SIGKILL after
  ``stop_timeout_s``; the PID file is removed. A stale PID file (process gone) is just removed.
* ``status()`` never starts or stops anything; it reads the PID file, the process table and the ports.

A PID is trusted only while ``/proc/<pid>/cmdline`` still contains the service's marker (a path inside the run
dir, or the program name), so a recycled PID is never signalled. Concurrent ``up``/``down`` of the same service
on the same run dir are serialised by a lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from marketpulse.config import Settings
from marketpulse.errors import MarketPulseError

HOST = "127.0.0.1"

State = Literal["running", "stopped", "stale", "external"]
Progress = Callable[[str], None]


class ServiceError(MarketPulseError):
    """Root of the errors of :mod:`marketpulse.services`; ``str(err)`` says what to do."""


class ToolMissingError(ServiceError):
    """A program the service needs (java, mvn, redis-server) is missing or too old."""


class PortInUseError(ServiceError):
    """A port of the service is held by a process marketpulse did not start (and it is not that service)."""


class ServiceStartError(ServiceError):
    """The process exited, or did not answer its health probe in time; the message ends with its log tail."""


class ServiceStopError(ServiceError):
    """The process survived SIGKILL (or cannot be signalled)."""


def default_cache_dir(settings: Settings) -> Path:
    """``services.cache_dir``, or ``~/.cache/marketpulse`` (absolute)."""
    path = settings.services.cache_dir or Path.home() / ".cache" / "marketpulse"
    return path.expanduser().resolve()


def default_run_dir(settings: Settings) -> Path:
    """``services.run_dir``, or ``<data_dir>/services`` (absolute)."""
    path = settings.services.run_dir or settings.data_dir / "services"
    return path.expanduser().resolve()


def port_in_use(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


#: processes started by this Python process, kept so they are reaped (no zombie, no ResourceWarning)
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): trust kill(0)
    return stat.rpartition(")")[2].split()[0:1] != ["Z"]


def pid_cmdline(pid: int) -> str | None:
    """The command line of ``pid`` as one string (None when /proc is not available)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return "" if Path("/proc/self").exists() else None
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status()`` sees. ``state``: running (our PID file, live process), stopped, stale (PID file of a
    dead or foreign process), external (a port is held by a process marketpulse did not start)."""

    name: str
    state: State
    pid: int | None
    ports: dict[str, int]
    log: Path
    pid_file: Path
    detail: str = ""

    @property
    def port(self) -> int:
        return next(iter(self.ports.values()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "pid": self.pid,
            "host": HOST,
            "port": self.port,
            "ports": dict(self.ports),
            "log": str(self.log),
            "pid_file": str(self.pid_file),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Transition:
    """The result of ``up()``/``down()``: what was done and the status afterwards."""

    action: Literal["started", "already running", "external", "stopped", "killed", "not running", "stale removed"]
    status: ServiceStatus
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class Service(ABC):
    """One local service bound to 127.0.0.1; subclasses say how to prepare, start and probe it."""

    name: ClassVar[str]
    start_timeout_s: ClassVar[float] = 60.0
    stop_timeout_s: ClassVar[float] = 30.0
    poll_s: ClassVar[float] = 0.25

    def __init__(self, settings: Settings, progress: Progress | None = None) -> None:
        self.settings = settings
        self.run_dir = default_run_dir(settings)
        self.cache_dir = default_cache_dir(settings)
        self._progress = progress

    # ---- what a subclass defines -------------------------------------------------------------------------------

    @property
    @abstractmethod
    def ports(self) -> dict[str, int]:
        """Named ports, the main one first."""

    @property
    @abstractmethod
    def marker(self) -> str:
        """A substring of the process command line that identifies this service (for recycled-PID safety)."""

    @abstractmethod
    def command(self) -> list[str]:
        """The argv of the process (run with cwd :attr:`work_dir`)."""

    @abstractmethod
    def healthy(self) -> bool:
        """One quick probe: the service answers on its port. Never raises (except for a missing dependency)."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Before the start: fetch, write config files, check prerequisites. Raises :class:`ServiceError`."""

    # ---- paths -------------------------------------------------------------------------------------------------

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def out_file(self) -> Path:
        """stdout and stderr of the process."""
        return self.logs_dir / f"{self.name}.out"

    @property
    def log_file(self) -> Path:
        """The service's own log (the same as :attr:`out_file` unless a subclass says otherwise)."""
        return self.out_file

    @property
    def work_dir(self) -> Path:
        """Data and generated config of the service."""
        return self.run_dir / self.name

    # ---- PID file ----------------------------------------------------------------------------------------------

    def read_pid(self) -> int | None:
        """The PID in the PID file (None: no file, or not a number)."""
        try:
            text = self.pid_file.read_text().strip()
        except FileNotFoundError:
            return None
        try:
            return int(text.split()[0])
        except (ValueError, IndexError):
            return None

    def _write_pid(self, pid: int) -> None:
        tmp = self.pid_file.with_suffix(".pid.tmp")
        tmp.write_text(f"{pid}\n")
        tmp.replace(self.pid_file)

    def _remove_pid(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()

    def owns(self, pid: int) -> bool:
        """``pid`` is alive and is this service (its command line holds :attr:`marker`)."""
        if not pid_alive(pid):
            return False
        cmdline = pid_cmdline(pid)
        return cmdline is None or self.marker in cmdline

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / f".{self.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # ---- status / up / down ------------------------------------------------------------------------------------

    def status(self) -> ServiceStatus:
        """The state seen from the PID file, the process table and the ports; changes nothing."""

        def make(state: State, pid: int | None = None, detail: str = "") -> ServiceStatus:
            return ServiceStatus(self.name, state, pid, dict(self.ports), self.log_file, self.pid_file, detail)

        pid = self.read_pid()
        if pid is not None and self.owns(pid):
            silent = [f"{k} {p}" for k, p in self.ports.items() if not port_in_use(p)]
            return make("running", pid, f"not answering yet on {', '.join(silent)}" if silent else "")
        if self.pid_file.exists():
            if pid is None:
                why = "no PID in it"
            else:
                why = "no such process" if not pid_alive(pid) else "PID now belongs to another program"
            return make("stale", pid, f"stale PID file {self.pid_file} ({why})")
        busy = [f"{k} {p}" for k, p in self.ports.items() if port_in_use(p)]
        if busy:
            return make("external", None, f"{', '.join(busy)} held by a process marketpulse did not start")
        return make("stopped")

    def up(self) -> Transition:
        """Start the service unless it runs; return once it answers. See the module docstring for the contract."""
        with self._locked():
            started = time.monotonic()
            st = self.status()
            if st.state == "running":
                return Transition("already running", st)
            notes: list[str] = []
            if st.state == "stale":
                self._remove_pid()
                notes.append(st.detail + ": removed")
            busy = {k: p for k, p in self.ports.items() if port_in_use(p)}
            if busy:
                if self.healthy():
                    external = self.status()
                    where = ", ".join(f"{HOST}:{p}" for p in busy.values())
                    note = f"a {self.name} not started by marketpulse answers on {where}: using it (down leaves it)"
                    return Transition("external", external, notes=[*notes, note])
                held = ", ".join(f"{HOST}:{p} ({k})" for k, p in busy.items())
                raise PortInUseError(
                    f"{self.name}: {held} already in use by another process; stop it or choose other ports "
                    f"(config services.{self.name}.*)"
                )
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self.prepare()
            pid = self._spawn()
            self._write_pid(pid)
            try:
                self._wait_healthy(pid)
            except BaseException:  # failed, or Ctrl-C while waiting: leave nothing half-started behind
                with contextlib.suppress(ServiceError):
                    self._terminate(pid, timeout_s=10.0)
                self._remove_pid()
                raise
            return Transition("started", self.status(), time.monotonic() - started, notes)

    def down(self) -> Transition:
        """Stop what ``up()`` started (SIGTERM, then SIGKILL after ``stop_timeout_s``) and remove the PID file."""
        with self._locked():
            started = time.monotonic()
            st = self.status()
            if st.state == "stale":
                self._remove_pid()
                return Transition("stale removed", self.status(), notes=[st.detail])
            if st.state != "running" or st.pid is None:
                return Transition("not running", st)
            action = self._terminate(st.pid, self.stop_timeout_s)
            self._remove_pid()
            return Transition(action, self.status(), time.monotonic() - started)

    # ---- helpers -----------------------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        """Progress for the user (the CLI prints it on stderr); silent without a callback."""
        if self._progress is not None:
            self._progress(f"{self.name}: {message}")

    def env(self) -> dict[str, str]:
        """The environment of the process."""
        return dict(os.environ)

    def _spawn(self) -> int:
        argv = self.command()
        with self.out_file.open("ab") as out:
            out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            out.flush()
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=self.work_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.env(),
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as e:
                raise ServiceStartError(f"{self.name}: cannot run {argv[0]}: {e.strerror or e}") from e
        _CHILDREN[proc.pid] = proc
        return proc.pid

    def _wait_healthy(self, pid: int) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if not pid_alive(pid):
                raise ServiceStartError(self._failure(f"exited during start (pid {pid})"))
            if self.healthy():
                return
            if time.monotonic() >= deadline:
                raise ServiceStartError(self._failure(f"did not answer within {self.start_timeout_s:.0f} s"))
            time.sleep(self.poll_s)

    def _failure(self, what: str) -> str:
        parts = [f"{self.name} {what}; logs in {self.logs_dir}"]
        files = [self.out_file] if self.log_file == self.out_file else [self.log_file, self.out_file]
        for path in files:
            text = tail(path)
            if text.strip():
                parts.append(f"--- last lines of {path}:\n{text}")
        return "\n".join(parts)

    def _terminate(self, pid: int, timeout_s: float) -> Literal["stopped", "killed"]:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL; return which one ended it."""
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return "stopped"
            except PermissionError as e:
                raise ServiceStopError(f"{self.name}: not allowed to signal pid {pid}: {e}") from e
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if not pid_alive(pid):
                    return "stopped" if sig == signal.SIGTERM else "killed"
                time.sleep(0.1)
        raise ServiceStopError(f"{self.name}: pid {pid} survived SIGKILL")
