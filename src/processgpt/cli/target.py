"""Which API the ``submit`` and ``tasks`` commands talk to, and the profile ``up`` leaves for
them.

Precedence, highest first: ``--url`` / ``--api-key``; ``PROCESSGPT_URL`` /
``PROCESSGPT_API_KEY`` (:class:`~processgpt.config.ClientSettings`); the profile of the data
directory (``--data-dir``, ``PROCESSGPT_DATA_DIR``, or the default one). The URL and the key
are chosen separately; the profile's key is used only with the profile's URL.

The profile (``<data dir>/profile.json``, mode 0600: it holds a key) is written by
``processgpt up`` once its API listens, and removed when that ``up`` stops. Each data
directory is one instance (its embedded Postgres, its development key, its profile), so
several ``up`` with different data directories do not overwrite each other's profile: a
command finds the one of the data directory it is given, as ``up`` did. Two ``up`` on one
data directory: the last started wins, and the first leaves the profile alone when it stops.
A profile left by an ``up`` that was killed names a process that is gone; the error for an
unreachable API says so.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from processgpt.cli.common import CliError
from processgpt.config import ClientSettings

PROFILE_NAME = "profile.json"


@dataclass(frozen=True)
class Profile:
    """What ``up`` wrote: where its API is, the development key, who wrote it."""

    url: str
    api_key: str
    pid: int
    path: Path

    def writer_running(self) -> bool:
        """Whether the process that wrote the profile still runs."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # it exists, as another user
            return True
        return True


def profile_path(data_dir: Path) -> Path:
    return data_dir / PROFILE_NAME


def write_profile(data_dir: Path, url: str, api_key: str) -> Path:
    """Write the profile of this process's API atomically, readable by its owner only."""
    path = profile_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "url": url,
        "api_key": api_key,
        "pid": os.getpid(),
        "written_at": datetime.now(UTC).isoformat(),
    }
    tmp = path.with_name(f".{PROFILE_NAME}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(body, out)
        out.write("\n")
    tmp.replace(path)
    return path


def remove_profile(data_dir: Path) -> None:
    """Remove the profile if this process wrote it (a later ``up`` may have replaced it)."""
    path = profile_path(data_dir)
    try:
        profile = read_profile(data_dir)
    except CliError:
        return
    if profile is not None and profile.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_profile(data_dir: Path) -> Profile | None:
    """The data directory's profile, None when there is none."""
    path = profile_path(data_dir)
    try:
        raw: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CliError(
            "invalid_profile", f"cannot read {path} ({exc}); delete it or run 'processgpt up'"
        ) from None
    if not (
        isinstance(raw, dict)
        and isinstance(raw.get("url"), str)
        and isinstance(raw.get("api_key"), str)
        and isinstance(raw.get("pid"), int)
    ):
        raise CliError(
            "invalid_profile", f"{path} is not a profile; delete it or run 'processgpt up'"
        )
    return Profile(raw["url"], raw["api_key"], raw["pid"], path)


@dataclass(frozen=True)
class Target:
    """The API a command talks to; ``profile`` when the URL came from one."""

    url: str
    api_key: str
    profile: Profile | None = None


def resolve_target(
    url: str | None, api_key: str | None, env: ClientSettings, data_dir: Path
) -> Target:
    """The API to talk to (see the module's precedence), or a :class:`CliError` naming the
    ways to give one."""
    url = url or env.url
    profile = read_profile(data_dir) if url is None or (api_key or env.api_key) is None else None
    from_profile = None
    if url is None:
        if profile is None:
            raise CliError(
                "api_not_configured",
                "no API to talk to: start one with 'processgpt up' (it leaves "
                f"{profile_path(data_dir)} for this command), or pass --url and --api-key "
                "(or set PROCESSGPT_URL and PROCESSGPT_API_KEY)",
            )
        url, from_profile = profile.url, profile
    key = api_key or env.api_key
    if key is None and profile is not None and profile.url.rstrip("/") == url.rstrip("/"):
        key = profile.api_key
    if key is None:
        raise CliError(
            "api_key_missing",
            f"no API key for {url}: pass --api-key or set PROCESSGPT_API_KEY (an admin "
            "creates one with 'processgpt keys create --tenant T')",
        )
    return Target(url.rstrip("/"), key, from_profile)
