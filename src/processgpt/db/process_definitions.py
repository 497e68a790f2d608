"""Process definitions (``proc_def``): immutable versions, published and read.

A publish is one transaction: the forms sent with the definition are stored, every form its
steps use and every definition its call activities call must exist, then the next version is
numbered and inserted in one statement (see migration 0015), and the schedules of its timer
start events replace those of the earlier version (:mod:`processgpt.db.schedules`).
Publishing content identical to the latest version (same format, name, canonical source and
forms) stores nothing and returns that version (``created`` False), so a deploy can be
repeated safely.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from processgpt.db.database import Database
from processgpt.db.schedules import replace_definition_schedules
from processgpt.db.sql import QUERIES
from processgpt.domain.errors import (
    DefinitionProblem,
    FormNotFound,
    InvalidInput,
    ProcessDefinitionInvalid,
    ProcessDefinitionNotFound,
)
from processgpt.domain.process.model import NodeKind, ProcessGraph
from processgpt.domain.process.publish import Compiled, FormSpec
from processgpt.domain.process.validate import forms_of


@dataclass(frozen=True)
class DefinitionVersion:
    """One stored version. ``definition`` (the graph's JSON, see
    :meth:`ProcessGraph.to_json`) and ``source`` only when read as a whole version."""

    id: str
    version: int
    name: str
    format: str
    hash: str
    created_at: datetime
    definition: dict[str, Any] | None = None
    source: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DefinitionVersion:
        return cls(
            id=row["id"],
            version=row["version"],
            name=row["name"],
            format=row["format"],
            hash=row["source_hash"],
            created_at=row["created_at"],
            definition=row.get("definition"),
            source=row.get("source"),
        )

    def graph(self) -> ProcessGraph:
        """The compiled graph (only for a version read whole)."""
        if not self.definition:
            raise ValueError(f"version {self.version} of {self.id!r} was read without its graph")
        return ProcessGraph.from_json(self.definition)


class ProcessDefinitionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def publish(
        self, tenant_id: str, compiled: Compiled, forms: Mapping[str, FormSpec] | None = None
    ) -> tuple[DefinitionVersion, bool]:
        """Store ``compiled`` as the next version of its id (or find it already is the
        latest): the version and whether it was created. Raises
        :class:`ProcessDefinitionInvalid` when a form or a called definition is missing
        (nothing is stored then, forms included)."""
        graph = compiled.graph
        try:
            async with self.db.transaction() as conn:
                for form_id, form in (forms or {}).items():
                    await conn.execute(
                        QUERIES["upsert_form_def"], tenant_id, form_id, graph.id, form.html,
                        form.fields,
                    )  # fmt: skip
                await self._check_references(conn, tenant_id, graph)
                await conn.execute(QUERIES["ensure_proc_def_head"], tenant_id, graph.id)
                latest = await conn.fetchval(QUERIES["lock_proc_def_head"], tenant_id, graph.id)
                if latest:
                    row = await conn.fetchrow(
                        QUERIES["get_proc_def_version"], tenant_id, graph.id, latest
                    )
                    if row is not None and row["source_hash"] == compiled.content_hash:
                        return DefinitionVersion.from_row({**row, "definition": None}), False
                row = await conn.fetchrow(
                    QUERIES["insert_proc_def_version"],
                    tenant_id,
                    graph.id,
                    compiled.name,
                    graph.to_json(),
                    compiled.format.value,
                    compiled.source,
                    compiled.content_hash,
                )
                assert row is not None  # an INSERT … RETURNING returns its row
                await replace_definition_schedules(
                    conn, tenant_id, graph, row["version"], row["created_at"]
                )
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise InvalidInput(f"tenant {tenant_id!r} does not exist") from None
        except asyncpg.exceptions.CheckViolationError:
            raise InvalidInput(f"{graph.id!r} is not a valid definition id", field="id") from None
        assert row is not None  # an INSERT … RETURNING returns its row
        return DefinitionVersion.from_row(row), True

    async def _check_references(
        self, conn: asyncpg.Connection, tenant_id: str, graph: ProcessGraph
    ) -> None:
        problems: list[DefinitionProblem] = []
        forms = forms_of(graph)
        if forms:
            found = {r["id"] for r in await conn.fetch(QUERIES["existing_forms"], tenant_id, forms)}
            for form_id in forms:
                if form_id not in found:
                    problems.append(
                        DefinitionProblem(
                            form_id, "form not defined: send it in `forms` or publish it before"
                        )
                    )
        called = sorted(_called(graph) - {graph.id})
        if called:
            rows = await conn.fetch(QUERIES["existing_proc_defs"], tenant_id, called)
            published = {r["id"] for r in rows}
            for definition_id in called:
                if definition_id not in published:
                    problems.append(
                        DefinitionProblem(
                            definition_id,
                            "a call activity calls this definition, which is not published",
                        )
                    )
        if problems:
            raise ProcessDefinitionInvalid(problems)

    async def form(self, tenant_id: str, form_id: str) -> StoredForm:
        """The stored form ``form_id``; raises :class:`FormNotFound`."""
        row = await self.db.fetchrow(QUERIES["get_form_def"], tenant_id, form_id)
        if row is None:
            raise FormNotFound(form_id)
        fields = row["fields_json"]
        if isinstance(fields, Mapping):  # {"fields": [...]} stored whole
            fields = fields.get("fields", [])
        return StoredForm(
            id=row["id"],
            proc_def_id=row["proc_def_id"],
            fields=[f for f in fields if isinstance(f, dict)] if isinstance(fields, list) else [],
            html=row["html"],
        )

    async def latest_versions(
        self, tenant_id: str, *, after: str = "", limit: int = 100
    ) -> list[DefinitionVersion]:
        """The latest version of each definition, by id after ``after``."""
        rows = await self.db.fetch(QUERIES["list_latest_proc_defs"], tenant_id, after, limit)
        return [DefinitionVersion.from_row(r) for r in rows]

    async def versions(self, tenant_id: str, definition_id: str) -> list[DefinitionVersion]:
        """Every version of the definition, oldest first; raises
        :class:`ProcessDefinitionNotFound` when there is none."""
        rows = await self.db.fetch(QUERIES["list_proc_def_versions"], tenant_id, definition_id)
        if not rows:
            raise ProcessDefinitionNotFound(definition_id)
        return [DefinitionVersion.from_row(r) for r in rows]

    async def get(
        self, tenant_id: str, definition_id: str, version: int | None = None
    ) -> DefinitionVersion:
        """One whole version (graph and source); the latest when ``version`` is None."""
        if version is None:
            row = await self.db.fetchrow(QUERIES["get_latest_proc_def"], tenant_id, definition_id)
        else:
            row = await self.db.fetchrow(
                QUERIES["get_proc_def_version"], tenant_id, definition_id, version
            )
        if row is None:
            raise ProcessDefinitionNotFound(definition_id, version)
        return DefinitionVersion.from_row(row)


@dataclass(frozen=True)
class StoredForm:
    """A form as stored (``form_def``): its fields (ProcessGPT's ``[{"key", "text", "type",
    "options"?}]``) and its HTML, if it was published with one."""

    id: str
    proc_def_id: str | None
    fields: list[dict[str, Any]]
    html: str


def _called(graph: ProcessGraph) -> set[str]:
    called: set[str] = set()
    for node in graph.nodes:
        if node.kind is NodeKind.CALL and node.called:
            called.add(node.called)
        if node.subprocess is not None:
            called |= _called(node.subprocess)
    return called
