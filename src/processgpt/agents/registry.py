"""Orchestrator registry: ``agent_orch`` names → executor factories.

Built-ins are listed here; installed packages add theirs under the entry-point group
``processgpt.orchestrators`` (``name = "package.module:Factory"``); and any
``package.module:Class`` can be named directly. A factory is called with no arguments (the
built-ins that need a model endpoint: with the :class:`~processgpt.config.LlmSettings` the
composition root built) and returns an A2A ``AgentExecutor``.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from processgpt.config import LlmSettings
from processgpt.domain.errors import InvalidInput, UnknownAgent

if TYPE_CHECKING:  # the pool's module loads mcp's types only where an llm agent runs
    from processgpt.tools.mcp import McpConnections

ENTRY_POINT_GROUP = "processgpt.orchestrators"

BUILTINS: dict[str, str] = {
    "demo": "processgpt.agents.demo:DemoExecutor",
    "llm": "processgpt.agents.llm:LlmExecutor",
    "deep-research": "processgpt.agents.deep_research:DeepResearchExecutor",
}
"""Built-in orchestrators. ``demo`` runs with no configuration; ``llm`` and ``deep-research``
need a model endpoint (see :func:`available_for_up`)."""

NEEDS_LLM = ("llm", "deep-research")
"""Built-ins that run only when a model endpoint is configured."""


def available() -> dict[str, str]:
    """Every registered orchestrator name → its ``module:attribute`` spec."""
    found = dict(BUILTINS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def available_for_up(llm: LlmSettings) -> dict[str, str]:
    """What ``processgpt up`` should run with this configuration: :func:`available` without
    ``llm`` and ``deep-research`` (:data:`NEEDS_LLM`) unless ``llm`` names a model endpoint
    (:attr:`LlmSettings.configured`)."""
    found = available()
    if not llm.configured:
        for name in NEEDS_LLM:
            found.pop(name, None)
    return found


def load_object(spec: str, *, from_cwd: bool = False) -> Any:
    """Import ``package.module:Attribute``. ``from_cwd``: the current directory is put first
    on ``sys.path`` (and stays there) before importing, so a user's own module is found as
    ``python -m`` would find it, also from the installed ``processgpt`` command."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidInput(f"{spec!r} is not of the form package.module:Attribute")
    if from_cwd:
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
            importlib.invalidate_caches()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInput(f"cannot import {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InvalidInput(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


def create_executor(
    name_or_spec: str, *, llm: LlmSettings | None = None, connections: McpConnections | None = None
) -> Any:
    """Instantiate the executor of a registered name or of a ``module:Class`` spec (imported
    from the current directory too, see :func:`load_object`). The built-ins that need a model
    endpoint (:data:`NEEDS_LLM`) get ``llm`` (default: ``LlmSettings()``) and the worker's
    MCP pool ``connections`` (default: a pool of their own, from the environment), and raise
    :class:`~processgpt.domain.errors.InvalidConfiguration` when ``llm`` names no endpoint."""
    if name_or_spec in NEEDS_LLM:
        factory = load_object(BUILTINS[name_or_spec])
        return factory(llm if llm is not None else LlmSettings(), connections=connections)
    spec = available().get(name_or_spec)
    if spec is None:
        if ":" not in name_or_spec:
            raise UnknownAgent(name_or_spec)
        return load_object(name_or_spec, from_cwd=True)()
    factory = load_object(spec)
    return factory()


def describe(name: str) -> str:
    spec = available().get(name, name)
    try:
        obj = load_object(spec)
    except InvalidInput:
        return ""
    return (obj.__doc__ or "").strip().splitlines()[0] if obj.__doc__ else ""
