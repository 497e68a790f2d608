"""``process deploy FILE``: publish a process definition (ProcessGPT JSON, or BPMN XML) over
the HTTP API, as ``submit`` does (see :mod:`processgpt.cli.target` for which API). The
other ``process`` actions (instances) are in :mod:`processgpt.cli.process_instances`.

The definition's id is ``--id``, else the JSON's ``processDefinitionId`` or the BPMN
process's id, else the file's name without its extension. A definition the API refuses prints
``error: definition_invalid: …`` and then each problem on a line of its own (stderr); the exit
status is 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from processgpt.cli.common import CliError
from processgpt.cli.process_instances import cmd_instances
from processgpt.cli.tasks import _client, _target
from processgpt.client import ApiError
from processgpt.config import Settings

_BPMN_PROCESS = "{http://www.omg.org/spec/BPMN/20100524/MODEL}process"
MAX_FILE_BYTES = 2_000_000


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CliError("payload_too_large", f"{path} is over {MAX_FILE_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError("invalid_input", f"cannot read {path}: {exc}") from None


def _bpmn_id(text: str) -> str | None:
    """The first process's id, when the document can be read (the API reports the rest)."""
    try:
        root = SafeET.fromstring(text, forbid_dtd=True)
    except (DefusedXmlException, ParseError, ValueError):
        return None
    process = root.find(_BPMN_PROCESS)
    return process.get("id") if process is not None else None


def _request(args: argparse.Namespace) -> dict[str, Any]:
    """The publish request's fields, from the file and the flags."""
    path = Path(args.file)
    text = _read(path)
    fields: dict[str, Any] = {"name": args.name}
    if path.suffix.lower() in (".bpmn", ".xml") or text.lstrip().startswith("<"):
        fields["bpmn"] = text
        found = _bpmn_id(text)
    else:
        try:
            definition = json.loads(text)
        except ValueError as exc:
            raise CliError("invalid_json", f"{path} is not valid JSON: {exc}") from None
        if not isinstance(definition, dict):
            raise CliError("invalid_input", f"{path} must hold a JSON object")
        fields["definition"] = definition
        found = definition.get("processDefinitionId")
    fields["definition_id"] = args.id or (found if isinstance(found, str) and found else None)
    fields["definition_id"] = fields["definition_id"] or path.stem.split(".")[0]
    if args.forms:
        try:
            forms = json.loads(_read(Path(args.forms)))
        except ValueError as exc:
            raise CliError("invalid_json", f"{args.forms} is not valid JSON: {exc}") from None
        if not isinstance(forms, dict):
            raise CliError("invalid_input", "--forms must hold a JSON object: form id → form")
        fields["forms"] = forms
    return fields


def _problems(exc: ApiError) -> str:
    """The error's message, or its problems one per line when it lists them."""
    if not exc.details:
        return exc.message
    lines = [f"{len(exc.details)} problem{'s' if len(exc.details) != 1 else ''}:"]
    for detail in exc.details:
        where = detail.get("id")
        lines.append(
            f"  {where}: {detail.get('problem')}" if where else f"  {detail.get('problem')}"
        )
    return "\n".join(lines)


async def cmd_process(settings: Settings, args: argparse.Namespace) -> int:
    if args.action != "deploy":
        return await cmd_instances(settings, args)
    target = _target(settings, args)
    fields = _request(args)
    async with _client(target) as client:
        try:
            published = await client.publish_process_definition(**fields)
        except ApiError as exc:
            raise CliError(exc.code, _problems(exc)) from None
    state = "published" if published.created else "unchanged (the same as the latest version)"
    print(f"process definition {published.id} version {published.version} {state}")
    return 0
