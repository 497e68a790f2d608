"""Compiled process graphs of definition versions, cached in memory.

Versions are immutable (migration 0015 refuses any UPDATE of ``proc_def``), so a graph read
once is good for the life of the process: the cache never needs invalidating. It is bounded
(least recently used versions leave first).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from processgpt.db.sql import QUERIES
from processgpt.domain.errors import ProcessDefinitionNotFound
from processgpt.domain.process.model import ProcessGraph
from processgpt.domain.process.validate import ID_SEPARATOR

SUBPROCESS_PATH_SEPARATOR = ID_SEPARATOR
"""``bpm_proc_inst.subprocess_node_id`` of an embedded sub-process's instance is the path of
sub-process node ids from the definition's graph down to its graph, joined by this."""

_Key = tuple[str, str, int]


class GraphCache:
    """Graphs by (tenant, definition id, version); at most ``size`` kept."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._graphs: OrderedDict[_Key, ProcessGraph] = OrderedDict()

    async def get(
        self, conn: Any, tenant_id: str, definition_id: str, version: int
    ) -> ProcessGraph:
        """The graph of that version (read with ``conn`` when not cached);
        :class:`ProcessDefinitionNotFound` when there is no such version."""
        key = (tenant_id, definition_id, version)
        graph = self._graphs.get(key)
        if graph is not None:
            self._graphs.move_to_end(key)
            return graph
        definition = await conn.fetchval(QUERIES["get_graph"], tenant_id, definition_id, version)
        if definition is None:
            raise ProcessDefinitionNotFound(definition_id, version)
        graph = ProcessGraph.from_json(definition)
        self._graphs[key] = graph
        while len(self._graphs) > self._size:
            self._graphs.popitem(last=False)
        return graph


def subgraph(graph: ProcessGraph, path: str | None) -> ProcessGraph:
    """The embedded sub-process graph at ``path`` (see :data:`SUBPROCESS_PATH_SEPARATOR`)
    inside ``graph``; ``graph`` itself for None."""
    if not path:
        return graph
    for node_id in path.split(SUBPROCESS_PATH_SEPARATOR):
        inner = graph.node(node_id).subprocess
        if inner is None:
            raise ValueError(f"{node_id!r} is not an embedded sub-process")
        graph = inner
    return graph
