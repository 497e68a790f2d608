"""ProcessGPT's definition JSON (what its modeler stores in ``proc_def.definition``) →
:class:`~processgpt.domain.process.model.ProcessGraph`.

The shape, as ProcessGPT exports it (every list optional)::

    {"processDefinitionId", "processDefinitionName",
     "data": [{"name", "type", "description"}],
     "roles": [{"name", "default": user | [user], "endpoint"}],
     "events": [{"id", "name", "type": "startEvent" | "endEvent" | "intermediateCatchEvent"
                 | "boundaryEvent", "definitionType": "bpmn:timerEventDefinition" | …,
                 "attachedToRef", "process", "properties": "<JSON text>"}],
     "gateways": [{"id", "name", "type": "exclusiveGateway" | "parallelGateway"
                   | "inclusiveGateway", "conditionData": ["form.field"], "process"}],
     "activities": [{"id", "name", "type": "userTask" | "serviceTask" | "scriptTask"
                     | "manualTask" | "callActivity", "role", "tool": "formHandler:<form>",
                     "inputData", "outputData", "instruction", "description", "duration",
                     "agent", "agentMode": "none" | "draft" | "complete", "orchestration",
                     "attachedEvents": [event id], "properties": "<JSON text>"}],
     "sequences": [{"id", "name", "source", "target", "condition",
                    "properties": "<JSON text: condition, conditionMode, conditionFunction,
                                   priority, default>"}],
     "subProcesses": [{"id", "name", "role", "process", "attachedEvents",
                       "children": {<the same shape>}}]}

How it is read (decided from ProcessGPT's own exports and engine):

* ``properties`` is JSON text (or an object). Events also appear in ``gateways[]`` (ProcessGPT
  lists them twice); identical copies count once.
* A sub-process's elements are listed flat beside the parent's, marked ``"process": <sub-process
  id>``, and/or under its ``children``; either way they go to the sub-process's own graph. A
  sequence belongs to the graph of its source.
* Start and end: the ``startEvent`` / ``endEvent`` events. A definition without any start
  event gets one (``start``) before every element that no sequence enters; without any end
  event, one (``end``) after every element that no sequence leaves. (ProcessGPT's generator
  always writes both; older hand-written definitions have none.)
* Conditions: ``conditionFunction`` (or ``conditionMode`` ``"expression"`` / ``"cel"`` with
  ``condition``) is a CEL expression; any other non-empty ``condition`` is a sentence the
  ``llm`` agent judges (``conditionMode: "text"``, ProcessGPT's default). A flow is the
  default of its gateway when its properties say ``"default": true`` (or ``isDefault``,
  ``defaultFlow``). ``priority``: lower first.
* Variables: ``data[]``, every form of a step (``tool: formHandler:<form>``: a step's form
  values are stored under the form's id) and every plain name in ``outputData``. A gateway's
  ``conditionData`` (``form.field``) lets its conditions name the field alone
  (``"rewrite" in approval_status``), unless two forms have a field of that name.
* ``tool: formHandler:defaultform`` is the modeler's placeholder: no form.
* Timers: ``properties`` ``timeDuration`` / ``timeDate`` (ISO 8601), ``timeCycle`` or the
  modeler's cron ``expression`` for start events only.

Problems of the document's shape (wrong types, unsupported element types) are collected, all of
them, and raised together as :class:`~processgpt.domain.errors.ProcessDefinitionInvalid`; the
graph's own rules are checked by :mod:`.validate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from processgpt.domain.errors import DefinitionProblem, ProcessDefinitionInvalid
from processgpt.domain.process.model import (
    BoundaryTimer,
    Flow,
    Node,
    NodeKind,
    ProcessGraph,
    Role,
    Variable,
)
from processgpt.domain.process.processgpt_elements import (
    CALL_TYPES,
    EVENT_TYPES,
    GATEWAY_TYPES,
    PLACEHOLDER_FORM,
    PLAIN_NAME,
    SUBPROCESS_TYPES,
    TASK_TYPES,
    VARIABLE_TYPES,
    ElementReader,
    clean_text,
    type_key,
)

MAX_ELEMENTS = 5000
"""Nodes and flows one definition may hold (sub-processes included)."""
MAX_NESTING = 20
"""Sub-processes inside sub-processes, at most."""


def parse_processgpt_json(data: Any, *, definition_id: str | None = None) -> ProcessGraph:
    """The graph of a ProcessGPT definition. ``definition_id`` (the id it is published
    under) overrides ``processDefinitionId``. Raises
    :class:`~processgpt.domain.errors.ProcessDefinitionInvalid` with every problem of the
    document's shape."""
    problems: list[DefinitionProblem] = []
    if not isinstance(data, Mapping):
        raise ProcessDefinitionInvalid([DefinitionProblem(None, "the definition is no object")])
    graph_id = definition_id or clean_text(data.get("processDefinitionId"))
    if not graph_id:
        problems.append(DefinitionProblem(None, "processDefinitionId is missing"))
    reader = _Reader(problems)
    graph = reader.graph(data, graph_id or "process", clean_text(data.get("processDefinitionName")))
    if reader.elements > MAX_ELEMENTS:
        problems.append(
            DefinitionProblem(None, f"more than {MAX_ELEMENTS} elements ({reader.elements})")
        )
    if problems:
        raise ProcessDefinitionInvalid(problems)
    return graph


@dataclass
class _Level:
    """The raw elements of one graph (the process, or one sub-process)."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    sequences: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)
    """node id → its lower-case type (to drop ProcessGPT's identical duplicates)."""


class _Reader(ElementReader):
    """Reads the document's structure; :class:`ElementReader` reads each element."""

    def __init__(self, problems: list[DefinitionProblem]) -> None:
        super().__init__(problems)
        self.elements = 0
        self.variables: tuple[Variable, ...] = ()
        self.roles: tuple[Role, ...] = ()
        self.building: list[str] = []
        """The sub-processes being built, outermost first."""

    # -- the document -------------------------------------------------------------------

    def _list(self, data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        value = data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(None, f"{key} must be a list")
            return []
        items: list[dict[str, Any]] = []
        for index, item in enumerate(value):
            named = isinstance(item, Mapping) and isinstance(item.get("id"), str) and item["id"]
            if named or (key in ("data", "roles") and isinstance(item, Mapping)):
                items.append(dict(item))
            else:
                self.problem(None, f"{key}[{index}] must be an object with a string id")
        return items

    def _levels(self, data: Mapping[str, Any], root: str) -> dict[str, _Level]:
        """Every element of the document (flat lists and sub-processes' ``children``), by
        the graph it belongs to (``root`` or a sub-process id)."""
        subprocess_ids: set[str] = set()
        self._collect_subprocess_ids(data, subprocess_ids)
        levels: dict[str, _Level] = {root: _Level()}
        for sp in subprocess_ids:
            levels[sp] = _Level()
        self._gather(data, root, subprocess_ids, levels)
        return levels

    def _collect_subprocess_ids(
        self, data: Mapping[str, Any], into: set[str], depth: int = 0
    ) -> None:
        if depth > MAX_NESTING:
            return  # reported when the graphs are built
        for key in ("subProcesses", "activities"):
            raw = data.get(key)
            for sp in raw if isinstance(raw, list) else []:
                if not isinstance(sp, Mapping) or not isinstance(sp.get("id"), str):
                    continue
                if key == "subProcesses" or type_key(sp.get("type")) in SUBPROCESS_TYPES:
                    into.add(sp["id"])
                    children = sp.get("children")
                    if isinstance(children, Mapping) and sp["id"] not in into - {sp["id"]}:
                        self._collect_subprocess_ids(children, into, depth + 1)

    def _gather(
        self,
        data: Mapping[str, Any],
        owner: str,
        subprocess_ids: set[str],
        levels: dict[str, _Level],
        depth: int = 0,
    ) -> None:
        if depth > MAX_NESTING:
            self.problem(owner, "sub-processes nested too deeply")
            return

        def level_of(item: Mapping[str, Any]) -> _Level:
            process = item.get("process")
            if isinstance(process, str) and process in subprocess_ids and process != item["id"]:
                return levels[process]
            return levels[owner]

        for key in ("events", "gateways", "activities", "subProcesses"):
            for item in self._list(data, key):
                if key == "subProcesses":
                    item.setdefault("type", "subProcess")
                kind = type_key(item.get("type"))
                level = level_of(item)
                earlier = level.seen.get(item["id"])
                if earlier is not None and earlier == kind:
                    continue  # ProcessGPT lists events twice, and children repeat the flat list
                level.seen[item["id"]] = kind
                level.nodes.append(item)
                if key in ("subProcesses", "activities") and kind in SUBPROCESS_TYPES:
                    children = item.get("children")
                    if isinstance(children, Mapping):
                        self._gather(children, item["id"], subprocess_ids, levels, depth + 1)
        for seq in self._list(data, "sequences"):
            levels.setdefault(owner, _Level()).sequences.append(seq)

    # -- one graph ----------------------------------------------------------------------

    def graph(self, data: Mapping[str, Any], graph_id: str, name: str) -> ProcessGraph:
        levels = self._levels(data, graph_id)
        # A sequence belongs to the graph holding its source (else its target).
        owner_of: dict[str, str] = {}
        for level_id, level in levels.items():
            for node in level.nodes:
                owner_of.setdefault(node["id"], level_id)
        placed: dict[str, _Level] = {k: _Level() for k in levels}
        seen_flows: set[str] = set()
        for level in levels.values():
            for seq in level.sequences:
                if seq["id"] in seen_flows:
                    continue
                seen_flows.add(seq["id"])
                source, target = seq.get("source"), seq.get("target")
                owner = owner_of.get(source if isinstance(source, str) else "") or owner_of.get(
                    target if isinstance(target, str) else "", graph_id
                )
                placed[owner].sequences.append(seq)
        for level_id, level in levels.items():
            placed[level_id].nodes = level.nodes
        self.variables = self._variables(data, levels)
        self.roles = self._roles(data)
        return self._build(graph_id, name, placed)

    def _build(self, level_id: str, name: str, levels: dict[str, _Level]) -> ProcessGraph:
        """The graph of one level; a sub-process shares the definition's variables and
        roles."""
        level = levels[level_id]
        attached: dict[str, str] = {}
        for item in level.nodes:
            for event_id in item.get("attachedEvents") or []:
                if isinstance(event_id, str):
                    attached[event_id] = item["id"]
        nodes: list[Node] = []
        boundaries: dict[str, list[BoundaryTimer]] = {}
        for item in level.nodes:
            self.elements += 1
            kind = type_key(item.get("type"))
            if kind == "boundaryevent":
                host = clean_text(item.get("attachedToRef")) or attached.get(item["id"])
                timer = self.boundary(item)
                if host is None or not host:
                    self.problem(item["id"], "boundary event attached to nothing")
                elif timer is not None:
                    boundaries.setdefault(host, []).append(timer)
                continue
            node = self._node(item, kind, levels)
            if node is not None:
                nodes.append(node)
        flows: list[Flow] = []
        flagged: dict[str, list[str]] = {}
        for seq in level.sequences:
            flow, is_default = self.flow(seq)
            flows.append(flow)
            if is_default:
                flagged.setdefault(flow.source, []).append(flow.id)
        self.elements += len(flows)
        nodes = [
            replace(n, boundary=tuple(boundaries.pop(n.id)))
            if n.id in boundaries and (n.activity is not None or n.kind in _HOSTS)
            else n
            for n in nodes
        ]
        for host, timers in boundaries.items():
            for timer in timers:
                self.problem(timer.id, f"boundary timer attached to {host!r}, not an activity")
        nodes = self._with_defaults(nodes, flagged, level.nodes)
        nodes, flows = self._implicit_ends(nodes, flows)
        return ProcessGraph(
            id=level_id,
            name=name,
            nodes=tuple(nodes),
            flows=tuple(flows),
            variables=self.variables,
            roles=self.roles,
        )

    def _subprocess(self, node_id: str, name: str, levels: dict[str, _Level]) -> Node | None:
        if node_id in self.building or len(self.building) >= MAX_NESTING:
            self.problem(node_id, "a sub-process inside itself, or nested too deeply")
            return None
        self.building.append(node_id)
        sub = self._build(node_id, name, levels)
        self.building.pop()
        return Node(node_id, NodeKind.SUBPROCESS, name, subprocess=sub)

    def _node(self, item: dict[str, Any], kind: str, levels: dict[str, _Level]) -> Node | None:
        node_id, name = item["id"], clean_text(item.get("name"))
        props = self.properties(item)
        if kind in TASK_TYPES:
            return Node(node_id, NodeKind.TASK, name, activity=self.activity(item, kind, props))
        if kind in GATEWAY_TYPES:
            return Node(node_id, GATEWAY_TYPES[kind], name)
        if kind in CALL_TYPES:
            called = (
                clean_text(item.get("calledElement"))
                or clean_text(props.get("calledElement"))
                or clean_text(props.get("definitionId"))
                or None
            )
            return Node(node_id, NodeKind.CALL, name, called=called)
        if kind in SUBPROCESS_TYPES:
            return self._subprocess(node_id, name, levels)
        if kind in EVENT_TYPES:
            return self.event(item, kind, props)
        self.problem(node_id, f"unsupported element type {item.get('type')!r}")
        return None

    def _with_defaults(
        self, nodes: list[Node], flagged: dict[str, list[str]], raw: list[dict[str, Any]]
    ) -> list[Node]:
        """Each gateway's default flow: the gateway's own ``default`` (a flow id), else the
        flow flagged ``default`` among those leaving it."""
        raw_by_id = {item["id"]: item for item in raw}
        defaults: dict[str, str] = {}
        for node in nodes:
            own = raw_by_id.get(node.id, {}).get("default")
            if isinstance(own, str) and own:
                defaults[node.id] = own
        for source, ids in flagged.items():
            if len(ids) > 1:
                self.problem(source, f"several default flows: {', '.join(ids)}")
            defaults.setdefault(source, ids[0])
        # A default on a node that is no gateway is kept: validation reports it.
        return [replace(n, default_flow=defaults[n.id]) if n.id in defaults else n for n in nodes]

    def _implicit_ends(self, nodes: list[Node], flows: list[Flow]) -> tuple[list[Node], list[Flow]]:
        """A start (end) event before (after) the elements no sequence enters (leaves), when
        the level has none."""
        has_start = any(n.kind is NodeKind.START for n in nodes)
        has_end = any(n.kind is NodeKind.END for n in nodes)
        if has_start and has_end:
            return nodes, flows
        targets = {f.target for f in flows}
        sources = {f.source for f in flows}
        ids = {n.id for n in nodes}
        flows = list(flows)
        if not has_start:
            start_id = _free_id("start", ids)
            firsts = [n for n in nodes if n.id not in targets]
            nodes = [Node(start_id, NodeKind.START, ""), *nodes]
            for n in firsts:
                flows.append(Flow(_free_id(f"{start_id}_{n.id}", ids), start_id, n.id))
            ids.add(start_id)
        if not has_end:
            end_id = _free_id("end", ids)
            lasts = [n for n in nodes if n.id not in sources and n.kind is not NodeKind.START]
            nodes = [*nodes, Node(end_id, NodeKind.END, "")]
            for n in lasts:
                flows.append(Flow(_free_id(f"{n.id}_{end_id}", ids), n.id, end_id))
        return nodes, flows

    # -- definition-wide ----------------------------------------------------------------

    def _variables(
        self, data: Mapping[str, Any], levels: dict[str, _Level]
    ) -> tuple[Variable, ...]:
        """``data[]``, then the variables the steps imply (forms, output names), then the
        gateways' field aliases."""
        variables = self._declared(data)
        fields: dict[str, list[str]] = {}
        for level in levels.values():
            for item in level.nodes:
                kind = type_key(item.get("type"))
                if kind in TASK_TYPES:
                    for implied in self._implied(item):
                        variables.setdefault(implied.name, implied)
                elif kind in GATEWAY_TYPES:
                    for entry in item.get("conditionData") or []:
                        form, _, name = (entry if isinstance(entry, str) else "").partition(".")
                        if form and PLAIN_NAME.match(name) and entry not in fields.get(name, []):
                            fields.setdefault(name, []).append(entry)
        for name, paths in fields.items():
            if len(paths) == 1 and name not in variables:  # two forms' fields: ambiguous
                form = paths[0].rpartition(".")[0]
                variables[name] = Variable(
                    name, "any", f"field {name} of form {form}", path=paths[0]
                )
        return tuple(variables.values())

    def _declared(self, data: Mapping[str, Any]) -> dict[str, Variable]:
        variables: dict[str, Variable] = {}
        for item in self._list(data, "data"):
            name = clean_text(item.get("name"))
            if not name:
                self.problem(None, "a data entry has no name")
            elif name in variables:
                self.problem(name, "variable declared twice")
            else:
                raw_type = type_key(item.get("type"))
                kind = VARIABLE_TYPES.get(raw_type, raw_type or "string")
                variables[name] = Variable(name, kind, clean_text(item.get("description")))
        return variables

    def _implied(self, item: Mapping[str, Any]) -> list[Variable]:
        """A step's form (its values are stored under the form id) and plain output names."""
        found: list[Variable] = []
        props = self.properties(item, report=False)
        tool = clean_text(item.get("tool")) or clean_text(props.get("tool"))
        form = tool.removeprefix("formHandler:").strip()
        if tool.startswith("formHandler:") and form and form != PLACEHOLDER_FORM:
            found.append(Variable(form, "object", f"form {form}"))
        for out in item.get("outputData") or []:
            if isinstance(out, str) and PLAIN_NAME.match(out.strip()):
                found.append(Variable(out.strip(), "string"))
        return found

    def _roles(self, data: Mapping[str, Any]) -> tuple[Role, ...]:
        roles: dict[str, Role] = {}
        for item in self._list(data, "roles"):
            name = clean_text(item.get("name"))
            if not name:
                self.problem(None, "a role has no name")
                continue
            default = item.get("default")
            if isinstance(default, list):
                entries = [d for d in default if isinstance(d, str) and d.strip()]
                if len(entries) > 1:
                    self.problem(name, "a role may have one default assignee, not several")
                default = entries[0] if entries else None
            if name in roles:
                self.problem(name, "role declared twice")
                continue
            roles[name] = Role(name, clean_text(default) or None)
        return tuple(roles.values())


_HOSTS = (NodeKind.CALL, NodeKind.SUBPROCESS)
"""Besides tasks, what a boundary timer may sit on."""


def _free_id(base: str, taken: set[str]) -> str:
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate)
    return candidate
