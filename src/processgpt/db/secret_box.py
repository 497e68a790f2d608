"""Encryption at rest for stored secrets (MCP header and env values, URL credentials).

A :class:`SecretBox` holds Fernet keys (AES-128-CBC + HMAC-SHA256, from ``cryptography``):
the first key encrypts, every key decrypts, so keys can be rotated (put a new key first,
re-encrypt with :meth:`SecretBox.rotate`, drop the old key later). A sealed value is the text
``enc:fernet:<token>``; anything else is plaintext (rows written before encryption existed,
or by hand) and :meth:`SecretBox.open` returns it as it is.

Where the keys come from (:meth:`SecretBox.configured`): ``PROCESSGPT_SECRET_KEYS``
(comma-separated) when set, else the file ``<data dir>/secret.key`` (one key a line, the first
encrypts), created with mode 0600 the first time a value is sealed. A process that reads keys
from the file reads it again when it has changed (another inode, size or modification time)
before it seals a value, and when a value does not open with the keys it has, so a key added
by ``processgpt secrets rotate --new-key`` is used from the next value on, without a restart.
Keys from ``PROCESSGPT_SECRET_KEYS`` are read once: processes given it must be restarted after
it changes. API and worker processes must share the keys: in a split deployment, set
``PROCESSGPT_SECRET_KEYS`` on every one of them.

The key file must be readable by its owner only (like an SSH private key): a file with any
permission for group or others is refused (``chmod 600`` it). It is written through a temporary
file made with ``O_EXCL`` in the same directory (never through a link planted there), and
created without a hard link on filesystems that have none.

Contracts: no key, token or plaintext ever appears in an error message or a log line; error
messages never name the key file's path (they may reach an API answer): the path is logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from processgpt.db.embedded import default_data_dir
from processgpt.domain.errors import SecretsUnavailable

log = logging.getLogger(__name__)

SEALED_PREFIX = "enc:fernet:"
KEY_FILE = "secret.key"


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


def new_key() -> str:
    """A fresh random Fernet key (url-safe base64 text)."""
    return Fernet.generate_key().decode("ascii")


def _parse_keys(texts: Sequence[str], source: str) -> list[Fernet]:
    keys: list[Fernet] = []
    for number, text in enumerate(texts, start=1):
        try:
            keys.append(Fernet(text.strip().encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            # Never the key itself: only where it is and which one.
            raise SecretsUnavailable(
                f"key {number} of {source} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return keys


class SecretBox:
    """Seals and opens secret values with a ring of Fernet keys. Thread-safe.

    Give ``keys`` (fixed) or ``key_file`` (read lazily; created on the first :meth:`seal`
    when missing). Opening a value never creates a key."""

    def __init__(self, keys: Sequence[str] = (), *, key_file: Path | None = None) -> None:
        if not keys and key_file is None:
            raise ValueError("give keys or a key file")
        self._fixed = bool(keys)
        self._key_file = key_file
        self._lock = threading.Lock()
        self._ring: MultiFernet | None = None
        self._texts: list[str] = [k.strip() for k in keys]
        """The keys of the ring, as text (the source of :meth:`derived_keys`)."""
        self._stamp: tuple[int, int, int, int] | None = None
        """The key file as it was when read: device, inode, size, modification time."""
        if keys:
            self._ring = MultiFernet(_parse_keys(keys, "PROCESSGPT_SECRET_KEYS"))

    @classmethod
    def configured(cls, keys: str | None, data_dir: Path | None) -> SecretBox:
        """The box of a process: ``keys`` (comma-separated, ``PROCESSGPT_SECRET_KEYS``) when
        given, else the key file in ``data_dir`` (default: the embedded database's)."""
        if keys and keys.strip():
            return cls([k for k in keys.split(",") if k.strip()])
        return cls(key_file=(data_dir or default_data_dir()) / KEY_FILE)

    @property
    def key_file(self) -> Path | None:
        """The key file, or None when the keys come from the environment."""
        return None if self._fixed else self._key_file

    def seal(self, plaintext: str) -> str:
        """``plaintext`` encrypted with the first key (a new key file is made if needed; a
        key file that changed since it was read is read again first)."""
        ring = self._keys(create=True, fresh=True)
        return SEALED_PREFIX + ring.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, value: str) -> str:
        """The plaintext of a sealed value; a value that is not sealed is returned as is.
        Raises :class:`SecretsUnavailable` when no configured key opens it."""
        if not is_sealed(value):
            return value
        token = value[len(SEALED_PREFIX) :].encode("ascii", errors="replace")
        try:
            return self._keys(create=False).decrypt(token).decode("utf-8")
        except InvalidToken:
            pass
        if not self._fixed and self._reload():
            with contextlib.suppress(InvalidToken):
                return self._keys(create=False).decrypt(token).decode("utf-8")
        raise SecretsUnavailable(
            "a stored secret was encrypted with a key this process does not have "
            "(every API and worker process needs the same PROCESSGPT_SECRET_KEYS)"
        )

    def rotate(self, value: str) -> str:
        """``value`` sealed with the first key: a sealed value is re-encrypted, a plaintext
        one encrypted."""
        if not is_sealed(value):
            return self.seal(value)
        token = value[len(SEALED_PREFIX) :].encode("ascii", errors="replace")
        ring = self._keys(create=False)
        try:
            return SEALED_PREFIX + ring.rotate(token).decode("ascii")
        except InvalidToken:
            raise SecretsUnavailable(
                "a stored secret was encrypted with a key that is not configured any more"
            ) from None

    def add_key(self) -> None:
        """Put a new key first in the key file (it encrypts from now on; the old ones still
        decrypt). Only for keys kept in the file."""
        if self._fixed or self._key_file is None:
            raise SecretsUnavailable(
                "the keys come from PROCESSGPT_SECRET_KEYS: put a new key first there instead"
            )
        with self._lock:
            existing = self._read_file() or []
            _write_key_file(self._key_file, [new_key(), *existing], replace=True)
            self._ring = None
        log.info("secret key added key_file=%s keys=%d", self._key_file, len(existing) + 1)

    def derived_keys(self, purpose: str) -> list[bytes]:
        """One key for ``purpose`` per configured key, in the ring's order (the first is
        the current one; the others verify what older keys made): HMAC-SHA256 of the purpose
        under each key, so a derived key reveals nothing of the key it came from and keys of
        different purposes are unrelated. A missing key file is created, as for :meth:`seal`."""
        self._keys(create=True, fresh=True)
        with self._lock:
            texts = list(self._texts)
        label = f"processgpt:{purpose}".encode()
        return [hmac.new(t.encode("ascii"), label, hashlib.sha256).digest() for t in texts]

    # -- keys ------------------------------------------------------------------------------

    def _keys(self, *, create: bool, fresh: bool = False) -> MultiFernet:
        """The ring (``fresh``: read the file again if it changed since it was read)."""
        with self._lock:
            if self._ring is not None and not (fresh and self._file_changed()):
                return self._ring
            assert self._key_file is not None
            texts = self._read_file()
            if texts is None:
                if not create:
                    log.error("no secret key key_file=%s (missing or empty)", self._key_file)
                    raise SecretsUnavailable(
                        "no secret key: set PROCESSGPT_SECRET_KEYS (the same on every API "
                        "and worker process) or provide the key file of the data directory"
                    )
                texts = _write_key_file(self._key_file, [new_key()], replace=False)
                log.info("secret key created key_file=%s", self._key_file)
            try:
                self._ring = MultiFernet(_parse_keys(texts, "the secret key file"))
                self._texts = [t.strip() for t in texts]
            except SecretsUnavailable as exc:
                log.error("secret key file unusable key_file=%s: %s", self._key_file, exc.message)
                raise
            return self._ring

    def _file_changed(self) -> bool:
        if self._fixed:
            return False
        assert self._key_file is not None
        try:
            return _stamp(os.stat(self._key_file)) != self._stamp
        except OSError:
            return self._stamp is not None

    def _read_file(self) -> list[str] | None:
        """The file's keys (None: no file, or no key in it); remembers its stamp."""
        assert self._key_file is not None
        try:
            with open(self._key_file, encoding="ascii") as file:
                status = os.fstat(file.fileno())
                _check_mode(self._key_file, status)
                self._stamp = _stamp(status)
                text = file.read()
        except FileNotFoundError:
            self._stamp = None
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.error(
                "cannot read the secret key file key_file=%s error=%s",
                self._key_file,
                type(exc).__name__,
            )
            raise SecretsUnavailable(
                f"cannot read the secret key file: {type(exc).__name__} (the server's log names it)"
            ) from None
        return _keys_of(text)

    def _reload(self) -> bool:
        """Forget the keys read from the file; True if the file has others now."""
        with self._lock:
            before = self._ring
            self._ring = None
        try:
            self._keys(create=False)
        except SecretsUnavailable:
            return False
        return self._ring is not before


def _stamp(status: os.stat_result) -> tuple[int, int, int, int]:
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


def _keys_of(text: str) -> list[str] | None:
    keys = [line.strip() for line in text.splitlines() if line.strip()]
    return keys or None


def _check_mode(path: Path, status: os.stat_result) -> None:
    """Refuse a key file that its group or others may read or write."""
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        log.error(
            "secret key file refused: group or others have access key_file=%s mode=%04o "
            "(chmod 600 it)",
            path,
            mode,
        )
        raise SecretsUnavailable(
            f"the secret key file is open to group or others (mode {mode:04o}): make it "
            "readable by its owner only (chmod 600)"
        )


def _write_key_file(path: Path, keys: list[str], *, replace: bool) -> list[str]:
    """Write ``keys`` (mode 0600), whole or not at all: the text goes to a temporary file
    (``mkstemp``: a new name, ``O_EXCL``, in the same directory) that then takes the name.
    Without ``replace`` an existing file wins, so two processes creating the file at once end
    up with the same keys; where the filesystem has no hard links the file is created with
    ``O_EXCL`` and written in one call instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{k}\n" for k in keys)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(temporary, path)
            return keys
        try:
            os.link(temporary, path)  # fails if the file exists: never overwrites a key
        except FileExistsError:
            return _existing_keys(path)
        except OSError:  # no hard links here (some network and FUSE filesystems)
            return _create_exclusively(path, text, keys)
        return keys
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _create_exclusively(path: Path, text: str, keys: list[str]) -> list[str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return _existing_keys(path)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    return keys


def _existing_keys(path: Path) -> list[str]:
    """The keys of a file another process created first."""
    existing = _keys_of(path.read_text(encoding="ascii"))
    if existing is None:
        log.error("the secret key file is empty key_file=%s", path)
        raise SecretsUnavailable("the secret key file is empty (the server's log names it)")
    return existing
