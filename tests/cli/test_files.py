"""``processgpt files``: upload, list, download, link, delete over a real API process."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import RunningApi, run_cli


@pytest.mark.timeout(300)  # eleven runs of the command, each a Python start
async def test_files_commands(api: RunningApi, data_dir: Path, tmp_path: Path) -> None:
    async def cli(*args: str) -> tuple[int, str, str]:
        done = await run_cli("files", *args, *api.flags, data_dir=data_dir)
        return done.returncode, done.stdout, done.stderr

    source = tmp_path / "numbers.csv"
    data = b"month,total\n" + b"".join(b"%d,%d\n" % (i, i * 7) for i in range(20_000))
    source.write_bytes(data)
    code, out, err = await cli("upload", str(source))
    assert code == 0, err
    file_id = out.split()[1]
    assert out.startswith(f"file {file_id} uploaded: numbers.csv, {len(data)} bytes, text/csv")

    code, out, err = await cli("list")
    assert code == 0 and file_id in out and "numbers.csv" in out, err

    target = tmp_path / "copy.csv"
    code, out, err = await cli("download", file_id, "-o", str(target))
    assert code == 0, err
    assert target.read_bytes() == data
    code, _out, err = await cli("download", file_id, "-o", str(target))
    assert code == 2 and "exists" in err  # never overwrites

    code, out, err = await cli("link", file_id, "--seconds", "60")
    assert code == 0, err
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(out.strip())).content == data

    binary = tmp_path / "blob.bin"
    binary.write_bytes(os.urandom(100))
    code, _out, err = await cli("upload", str(binary))
    assert code == 2 and err.startswith("error: unsupported_media_type:"), err
    code, _out, err = await cli("upload", str(tmp_path / "missing.txt"))
    assert code == 2 and err.startswith("error: invalid_input:"), err

    code, out, err = await cli("delete", file_id)
    assert code == 0 and out.strip() == f"file {file_id} deleted", err
    code, _out, err = await cli("download", file_id, "-o", str(tmp_path / "again.csv"))
    assert code == 2 and err.startswith("error: file_not_found:"), err
    assert not (tmp_path / "again.csv").exists()
