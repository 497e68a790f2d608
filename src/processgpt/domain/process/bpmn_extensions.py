"""What BPMN elements carry in ``extensionElements``: ProcessGPT's ``uengine:json`` and
Camunda / Zeebe extension properties (agent settings, conditions' modes, priorities, role
defaults), and which extension elements are refused. :mod:`.bpmn` reads the rest."""

from __future__ import annotations

import json
from typing import Any
from xml.etree.ElementTree import Element

from processgpt.domain.errors import DefinitionProblem

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
UENGINE = "http://uengine"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
ZEEBE = "http://camunda.org/schema/zeebe/1.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

_INERT_EXTENSIONS = {(ZEEBE, "userTask"), (ZEEBE, "versionTag"), (CAMUNDA, "versionTag")}
"""Extension elements that change nothing here (Camunda's markers)."""


def split_tag(tag: str) -> tuple[str, str]:
    """``(namespace, local name)`` of an ElementTree tag."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def attr(element: Element, name: str) -> str:
    """An attribute's value, stripped (empty when absent)."""
    return (element.get(name) or "").strip()


class ExtensionReader:
    """Reads extension elements; ``problems`` collects what is wrong with them."""

    def __init__(self) -> None:
        self.problems: list[DefinitionProblem] = []

    def problem(self, element_id: str | None, text: str) -> None:
        self.problems.append(DefinitionProblem(element_id, text))

    def _extension(self, element: Element, *, check: bool = True) -> dict[str, Any]:
        """The settings an element carries in its ``extensionElements`` (ProcessGPT's JSON,
        or Camunda / Zeebe properties); with ``check``, other extension content is
        reported."""
        props: dict[str, Any] = {}
        extension = element.find(f"{{{BPMN}}}extensionElements")
        if extension is None:
            return props
        element_id = attr(element, "id")
        if check:
            self._extension_children(extension, element_id)
        for child in extension:
            ns, local = split_tag(child.tag)
            if ns == UENGINE and local == "properties":
                for part in child.findall(f"{{{UENGINE}}}json"):
                    props.update(self._json(element_id, part.text or ""))
            elif ns in (CAMUNDA, ZEEBE) and local == "properties":
                for prop in child.findall(f"{{{ns}}}property"):
                    props[attr(prop, "name")] = prop.get("value", "")
            elif ns == ZEEBE and local == "formDefinition":
                props.setdefault("form", attr(child, "formId") or attr(child, "formKey"))
        return props

    def _extension_children(self, extension: Element, element_id: str) -> None:
        for child in extension:
            ns, local = split_tag(child.tag)
            known = (
                (ns == UENGINE and local in ("properties",))
                or (ns in (CAMUNDA, ZEEBE) and local == "properties")
                or (ns == ZEEBE and local == "formDefinition")
                or (ns, local) in _INERT_EXTENSIONS
            )
            if not known:
                self.problem(element_id or None, f"unsupported extension element {{{ns}}}{local}")

    def _json(self, element_id: str, text: str) -> dict[str, Any]:
        if not text.strip():
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            self.problem(element_id, "uengine:json is not valid JSON")
            return {}
        if not isinstance(value, dict):
            self.problem(element_id, "uengine:json must be a JSON object")
            return {}
        return value


def setting_names(value: Any) -> list[str]:
    """A list setting: a JSON list, or comma-separated text (Camunda properties)."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if isinstance(v, str | int) and str(v).strip()]
    return []


def unwrap_juel(text: str) -> str:
    """The expression inside a JUEL wrapper (``${…}`` / ``#{…}``), else ``text``."""
    if len(text) > 3 and text[0] in "$#" and text[1] == "{" and text.endswith("}"):
        return text[2:-1].strip()
    return text
