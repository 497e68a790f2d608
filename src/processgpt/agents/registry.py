"""Orchestrator registry: ``agent_orch`` names → executor factories.

Built-ins are listed here; installed packages add theirs under the entry-point group
``processgpt.orchestrators`` (``name = "package.module:Factory"``); and any
``package.module:Class`` can be named directly. A factory is called with no arguments and
returns an A2A ``AgentExecutor``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from processgpt.domain.errors import InvalidInput, UnknownAgent

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


def available_for_up(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """What ``processgpt up`` should run with this configuration: :func:`available` without
    ``llm`` and ``deep-research`` (:data:`NEEDS_LLM`) unless ``PROCESSGPT_LLM_BASE_URL`` or
    ``PROCESSGPT_LLM_API_KEY`` is set and the ``openai`` package is installed (the ``llm``
    extra)."""
    env = os.environ if env is None else env
    found = available()
    llm_configured = bool(env.get("PROCESSGPT_LLM_BASE_URL") or env.get("PROCESSGPT_LLM_API_KEY"))
    if not llm_configured or importlib.util.find_spec("openai") is None:
        for name in NEEDS_LLM:
            found.pop(name, None)
    return found


def load_object(spec: str) -> Any:
    """Import ``package.module:Attribute``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidInput(f"{spec!r} is not of the form package.module:Attribute")
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


def create_executor(name_or_spec: str) -> Any:
    """Instantiate the executor of a registered name or of a ``module:Class`` spec."""
    spec = available().get(name_or_spec)
    if spec is None:
        if ":" not in name_or_spec:
            raise UnknownAgent(name_or_spec)
        spec = name_or_spec
    factory = load_object(spec)
    return factory()


def describe(name: str) -> str:
    spec = available().get(name, name)
    try:
        obj = load_object(spec)
    except InvalidInput:
        return ""
    return (obj.__doc__ or "").strip().splitlines()[0] if obj.__doc__ else ""
