"""Encryption at rest: sealing, opening, keys from the environment or a key file, rotation."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from processgpt.db.secret_box import SecretBox, is_sealed, new_key
from processgpt.domain.errors import SecretsUnavailable

SECRET = "ghp_planted-secret-0123456789"


def test_sealed_values_open_with_any_key_of_the_ring() -> None:
    old, new = new_key(), new_key()
    sealed = SecretBox([old]).seal(SECRET)
    assert is_sealed(sealed) and SECRET not in sealed
    assert SecretBox([new, old]).open(sealed) == SECRET
    assert SecretBox([old]).open("plain value") == "plain value"  # rows from before
    with pytest.raises(SecretsUnavailable) as refused:
        SecretBox([new]).open(sealed)
    assert SECRET not in refused.value.message and old not in refused.value.message


def test_rotation_re_encrypts_with_the_first_key() -> None:
    old, new = new_key(), new_key()
    sealed = SecretBox([old]).seal(SECRET)
    ring = SecretBox([new, old])
    rotated = ring.rotate(sealed)
    assert rotated != sealed and SecretBox([new]).open(rotated) == SECRET
    encrypted = ring.rotate("plaintext-from-before")  # plaintext gets sealed
    assert is_sealed(encrypted) and SecretBox([new]).open(encrypted) == "plaintext-from-before"
    with pytest.raises(SecretsUnavailable):
        SecretBox([new]).rotate(sealed)  # a value no configured key opens


def test_a_malformed_key_is_refused_without_showing_it() -> None:
    with pytest.raises(SecretsUnavailable) as refused:
        SecretBox.configured("not-a-fernet-key-but-secret", None)
    assert "not-a-fernet-key-but-secret" not in refused.value.message
    assert "key 1" in refused.value.message


def test_the_key_file_is_made_0600_on_first_seal_and_shared(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    api = SecretBox.configured(None, data_dir)
    worker = SecretBox.configured("", data_dir)
    with pytest.raises(SecretsUnavailable, match="no secret key"):
        worker.open(SecretBox([new_key()]).seal("x"))  # opening never creates a key
    assert not (data_dir / "secret.key").exists()

    sealed = api.seal(SECRET)
    key_file = data_dir / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert worker.open(sealed) == SECRET  # the worker reads the same file

    # a new first key: the worker, holding the old ring, reads the file again when a value
    # does not open, and the old values still open
    api.add_key()
    newer = SecretBox.configured(None, data_dir).seal(SECRET)
    assert worker.open(newer) == SECRET and worker.open(sealed) == SECRET
    assert len(key_file.read_text().split()) == 2
    with pytest.raises(SecretsUnavailable, match="PROCESSGPT_SECRET_KEYS"):
        SecretBox([new_key()]).add_key()


def test_processes_creating_the_key_file_at_once_agree(tmp_path: Path) -> None:
    boxes = [SecretBox.configured(None, tmp_path) for _ in range(8)]
    sealed: list[str] = []
    threads = [threading.Thread(target=lambda b=b: sealed.append(b.seal(SECRET))) for b in boxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader = SecretBox.configured(None, tmp_path)
    assert [reader.open(s) for s in sealed] == [SECRET] * 8
    assert len((tmp_path / "secret.key").read_text().split()) == 1


def test_a_running_process_seals_with_the_key_a_rotation_added(tmp_path: Path) -> None:
    running = SecretBox.configured(None, tmp_path)  # an API process, its keys read and kept
    before = running.seal(SECRET)
    SecretBox.configured(None, tmp_path).add_key()  # `processgpt secrets rotate --new-key`
    new_first, old = (tmp_path / "secret.key").read_text().split()
    after = running.seal(SECRET)
    assert SecretBox([new_first]).open(after) == SECRET  # the new key, without a restart
    assert SecretBox([old]).open(before) == SECRET
    with pytest.raises(SecretsUnavailable):
        SecretBox([old]).open(after)


def test_a_key_file_open_to_group_or_others_is_refused(tmp_path: Path) -> None:
    SecretBox.configured(None, tmp_path).seal(SECRET)  # creates it, 0600
    key_file = tmp_path / "secret.key"
    for mode in (0o644, 0o640, 0o604, 0o620):
        key_file.chmod(mode)
        box = SecretBox.configured(None, tmp_path)
        with pytest.raises(SecretsUnavailable, match="chmod 600") as refused:
            box.seal(SECRET)
        assert str(tmp_path) not in refused.value.message
    key_file.chmod(0o600)
    assert SecretBox.configured(None, tmp_path).seal(SECRET)
    key_file.chmod(0o400)  # read-only for its owner is fine
    assert SecretBox.configured(None, tmp_path).seal(SECRET)


def test_a_link_planted_where_the_temporary_file_goes_is_not_followed(tmp_path: Path) -> None:
    """The earlier temporary name was predictable (pid and thread): a link planted there made
    the key's writer write through it."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    data = tmp_path / "data"
    data.mkdir()
    planted = data / f".secret.key.{os.getpid()}.{threading.get_ident()}.tmp"
    planted.symlink_to(victim)
    box = SecretBox.configured(None, data)
    sealed = box.seal(SECRET)
    assert victim.read_text() == "precious\n"
    assert not (data / "secret.key").is_symlink()
    assert stat.S_IMODE((data / "secret.key").stat().st_mode) == 0o600
    assert SecretBox.configured(None, data).open(sealed) == SECRET
    assert [p.name for p in data.iterdir() if p.name.endswith(".tmp")] == [planted.name]


def test_the_key_file_is_made_where_there_are_no_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)  # what such a filesystem answers
    box = SecretBox.configured(None, tmp_path)
    sealed = box.seal(SECRET)
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().split()) == 1
    # a second process finds the file there and keeps its key
    assert SecretBox.configured(None, tmp_path).open(sealed) == SECRET
    assert SecretBox.configured(None, tmp_path).seal("x")
    assert len(key_file.read_text().split()) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_errors_about_the_key_file_do_not_name_its_path(tmp_path: Path) -> None:
    data = tmp_path / "private-data-dir"
    data.mkdir()
    with pytest.raises(SecretsUnavailable) as missing:
        SecretBox.configured(None, data).open(SecretBox([new_key()]).seal("x"))
    (data / "secret.key").write_text("not-a-key\n")
    (data / "secret.key").chmod(0o600)
    with pytest.raises(SecretsUnavailable) as malformed:
        SecretBox.configured(None, data).seal("x")
    (data / "secret.key").chmod(0o000)
    with pytest.raises(SecretsUnavailable) as unreadable:
        SecretBox.configured(None, data).seal("x")
    (data / "secret.key").chmod(0o600)
    for refused in (missing, malformed, unreadable):
        assert "private-data-dir" not in refused.value.message, refused.value.message
