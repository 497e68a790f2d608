"""``files upload|download|list|link|delete``: the tenant's files over the HTTP API (see
:mod:`processgpt.cli.target` for which API; the API key decides the tenant)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

from processgpt.cli.common import CliError
from processgpt.cli.tasks import _client, _target
from processgpt.client import ProcessGPTClient
from processgpt.config import Settings
from processgpt.domain.files import FileInfo, clean_name


def _line(f: FileInfo) -> str:
    owner = f"task {f.task_id}" if f.task_id else f"chat {f.chat_id}" if f.chat_id else "-"
    when = f.created_at.isoformat(timespec="seconds")
    return f"{f.id}  {f.size:>10}  {f.content_type:<24} {when}  {owner:<42} {f.name}"


async def _download(client: ProcessGPTClient, file_id: str, output: str | None) -> str:
    """Write the file to ``output`` (``-``: stdout; default: its name, in the current
    directory), through a temporary file renamed when complete; an existing file is not
    replaced."""
    chunks = client.download_file(file_id)
    if output == "-":
        async for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return "stdout"
    target = Path(output) if output else Path(clean_name((await client.get_file(file_id)).name))
    if target.exists():
        raise CliError("invalid_input", f"{target} exists: give another --output")
    fd, name = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                out.write(chunk)
        os.link(name, target)  # fails if the target appeared meanwhile: never replaces
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    return str(target)


async def cmd_files(settings: Settings, args: argparse.Namespace) -> int:
    target = _target(settings, args)
    async with _client(target) as client:
        if args.action == "upload":
            path = Path(args.path)
            if not path.is_file():  # noqa: ASYNC240 - one stat before any I/O
                raise CliError("invalid_input", f"{path} is not a file")
            info = await client.upload_file(
                path, content_type=args.type, task_id=args.task, chat_id=args.chat
            )
            print(f"file {info.id} uploaded: {info.name}, {info.size} bytes, {info.content_type}")
        elif args.action == "download":
            where = await _download(client, args.file, args.output)
            if where != "stdout":
                print(f"file {args.file} saved to {where}")
        elif args.action == "list":
            cursor = None
            while True:
                page = await client.list_files(task_id=args.task, chat_id=args.chat, cursor=cursor)
                for info in page.items:
                    print(_line(info))
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        elif args.action == "link":
            link = await client.file_link(args.file, seconds=args.seconds)
            print(link.url)
        else:
            await client.delete_file(args.file)
            print(f"file {args.file} deleted")
    return 0
