"""What publishing a definition means before it reaches the database: read the source in
its format, validate the graph, and fingerprint the content.

The repository (:mod:`processgpt.db.process_definitions`) adds the checks that need the
database (forms exist, called definitions are published) and stores the version.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from processgpt.domain.process.bpmn import parse_bpmn
from processgpt.domain.process.model import ProcessGraph
from processgpt.domain.process.processgpt_json import parse_processgpt_json
from processgpt.domain.process.validate import check


class SourceFormat(enum.StrEnum):
    PROCESSGPT_JSON = "processgpt_json"
    BPMN = "bpmn"


@dataclass(frozen=True)
class FormSpec:
    """A form sent with a definition (stored in ``form_def``): its fields as ProcessGPT
    describes them, and optional HTML."""

    fields: list[Any] = field(default_factory=list)
    html: str = ""


@dataclass(frozen=True)
class Compiled:
    """A definition ready to store: its graph, name, source text and content hash."""

    graph: ProcessGraph
    name: str
    format: SourceFormat
    source: str
    """The definition as sent: canonical JSON text, or the XML."""
    content_hash: str


def compile_definition(
    definition_id: str,
    source: Mapping[str, Any] | str,
    *,
    name: str | None = None,
    forms: Mapping[str, FormSpec] | None = None,
) -> Compiled:
    """Read ``source`` (a ProcessGPT JSON object, or BPMN XML text) as definition
    ``definition_id`` and validate it; raises
    :class:`~processgpt.domain.errors.ProcessDefinitionInvalid` listing every problem."""
    if isinstance(source, str):
        fmt, text = SourceFormat.BPMN, source
        graph = parse_bpmn(source, definition_id=definition_id)
    else:
        fmt = SourceFormat.PROCESSGPT_JSON
        text = json.dumps(source, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        graph = parse_processgpt_json(source, definition_id=definition_id)
    check(graph)
    chosen = (name or "").strip() or graph.name or definition_id
    forms_text = json.dumps(
        {k: [v.fields, v.html] for k, v in sorted((forms or {}).items())},
        ensure_ascii=False,
        sort_keys=True,
    )
    digest = hashlib.sha256()
    for part in (fmt.value, chosen, text, forms_text):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return Compiled(graph, chosen, fmt, text, digest.hexdigest())
