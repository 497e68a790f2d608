"""BPMN 2.0 XML (as bpmn.io, Camunda Modeler and ProcessGPT's modeler export it) →
:class:`~processgpt.domain.process.model.ProcessGraph`.

Parsed with ``defusedxml``: no DTD, no entities, no external references, at most
:data:`MAX_BPMN_BYTES`. One ``process`` per document (a ``collaboration`` with its one
``participant`` is fine: that is how lanes are drawn).

Supported elements (the BPMN namespace): ``startEvent`` (plain, or a timer start: a schedule),
``endEvent`` (plain), ``userTask``, ``serviceTask``, ``scriptTask``, ``manualTask`` and
``task`` (a person's step unless an agent is set), ``exclusiveGateway`` (with ``default``),
``parallelGateway``, ``inclusiveGateway`` (with ``default``), ``sequenceFlow`` with
``conditionExpression``, ``intermediateCatchEvent`` with a timer (``timeDuration`` /
``timeDate``), message or signal definition, ``boundaryEvent`` with a timer (interrupting or
not: ``cancelActivity``), ``subProcess``, ``callActivity`` (``calledElement``: the id of
another published definition), ``laneSet`` / ``lane`` / ``flowNodeRef`` (lanes are roles: a
step's role is its lane), ``message`` / ``signal``, ``dataObject`` /
``dataObjectReference`` (process variables) with ``dataInputAssociation`` /
``dataOutputAssociation`` (a step's input and output variables), and the containers
``definitions``, ``process``, ``collaboration``, ``participant``, ``documentation``,
``incoming`` / ``outgoing``, ``extensionElements``. ``textAnnotation`` and ``association`` are
comments. The diagram (``bpmndi:BPMNDiagram``) is accepted and ignored. A ``scriptTask``'s
``script`` is never run: it is the step's instruction when it has none. Every other element
is refused: :class:`~processgpt.domain.errors.ProcessDefinitionInvalid` lists each one's id
and type.

Agent settings (an activity's ``agent``, ``agentMode``, ``orchestration``, ``instruction``,
``tool`` / ``form``, ``inputData``, ``outputData``, ``duration``, ``role``; a flow's
``condition`` + ``conditionMode: "text"`` and ``priority``) travel in ``extensionElements``,
in either of two forms:

* ProcessGPT's own: ``<uengine:properties><uengine:json>{…}</uengine:json></uengine:properties>``
  (namespace ``http://uengine``), a JSON object with those keys, as its modeler writes it;
* Camunda Modeler's extension properties: ``<camunda:properties><camunda:property
  name="agent" value="llm"/>…`` (or ``zeebe:properties``); lists are comma-separated.

Camunda's ``camunda:formKey`` and ``zeebe:formDefinition`` name a step's form. Other
attributes of vendor namespaces are ignored; other extension elements are refused. A
condition written as ``${…}`` (JUEL) is read as the CEL expression inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from processgpt.domain.errors import DefinitionProblem, ProcessDefinitionInvalid
from processgpt.domain.process.bpmn_extensions import (
    BPMN,
    BPMNDI,
    CAMUNDA,
    UENGINE,
    ExtensionReader,
    attr,
    setting_names,
    split_tag,
    unwrap_juel,
)
from processgpt.domain.process.model import (
    Activity,
    AgentMode,
    BoundaryTimer,
    Flow,
    Node,
    NodeKind,
    ProcessGraph,
    Role,
    TaskType,
    TimerSpec,
    Variable,
)

MAX_BPMN_BYTES = 2_000_000
MAX_NESTING = 20
"""Sub-processes inside sub-processes, at most."""
_TASKS = {
    "userTask": TaskType.USER,
    "task": TaskType.USER,
    "serviceTask": TaskType.SERVICE,
    "scriptTask": TaskType.SCRIPT,
    "manualTask": TaskType.MANUAL,
}
_GATEWAYS = {
    "exclusiveGateway": NodeKind.EXCLUSIVE,
    "parallelGateway": NodeKind.PARALLEL,
    "inclusiveGateway": NodeKind.INCLUSIVE,
}
_FLOW_ELEMENT_CHILDREN = {"incoming", "outgoing", "documentation", "extensionElements"}
_ACTIVITY_CHILDREN = _FLOW_ELEMENT_CHILDREN | {
    "dataInputAssociation",
    "dataOutputAssociation",
    "property",
}
_COMMENTS = {"textAnnotation", "association"}
_SKIPPED = _COMMENTS | {
    "laneSet",  # lanes and data are read first, by _Reader._data
    "dataObject",
    "dataObjectReference",
    "documentation",
    "incoming",  # a sub-process's own links: its sequence flows say the same
    "outgoing",
}
_LIST_KEYS = ("inputData", "outputData")


@dataclass
class _Graph:
    """What one ``process`` or ``subProcess`` holds while it is read."""

    nodes: list[Node] = field(default_factory=list)
    flows: list[Flow] = field(default_factory=list)
    boundaries: list[tuple[str, BoundaryTimer]] = field(default_factory=list)
    defaults: dict[str, str] = field(default_factory=dict)


def parse_bpmn(text: str, *, definition_id: str | None = None) -> ProcessGraph:
    """The graph of a BPMN document. ``definition_id`` (the id it is published under)
    overrides the process id. Raises :class:`ProcessDefinitionInvalid` listing every
    unsupported element and every malformed one."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BPMN_BYTES:
        raise ProcessDefinitionInvalid(
            [DefinitionProblem(None, f"the BPMN document is over {MAX_BPMN_BYTES} bytes")]
        )
    try:
        root = SafeET.fromstring(text, forbid_dtd=True)
    except DefusedXmlException:
        raise ProcessDefinitionInvalid(
            [DefinitionProblem(None, "DTDs and entities are not allowed in BPMN documents")]
        ) from None
    except (ParseError, ValueError) as exc:
        raise ProcessDefinitionInvalid(
            [DefinitionProblem(None, f"not well-formed XML: {exc}")]
        ) from None
    return _Reader().document(root, definition_id)


class _Reader(ExtensionReader):
    """Reads the document; :class:`ExtensionReader` the settings in extension elements."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        """How many sub-processes the element being read is in."""
        self.messages: dict[str, str] = {}
        self.signals: dict[str, str] = {}
        self.data_objects: dict[str, str] = {}
        """dataObject / dataObjectReference id → variable name."""
        self.variables: dict[str, Variable] = {}
        self.lane_of: dict[str, str] = {}
        self.roles: dict[str, Role] = {}

    def unsupported(self, element: Element, owner: str | None = None) -> None:
        """Report ``element`` (by its id, else the id of the element it is in)."""
        ns, local = split_tag(element.tag)
        prefix = "" if ns in (BPMN, "") else f"{{{ns}}}"
        element_id = attr(element, "id") or owner or None
        self.problem(element_id, f"unsupported BPMN element {prefix}{local}")

    # -- the document -------------------------------------------------------------------

    def document(self, root: Element, definition_id: str | None) -> ProcessGraph:
        if split_tag(root.tag) != (BPMN, "definitions"):
            raise ProcessDefinitionInvalid(
                [DefinitionProblem(None, "the root element is not bpmn:definitions")]
            )
        processes: list[Element] = []
        for child in root:
            ns, local = split_tag(child.tag)
            if ns == BPMNDI and local == "BPMNDiagram":
                continue
            if ns != BPMN:
                self.unsupported(child)
            elif local == "process":
                processes.append(child)
            elif local == "collaboration":
                self._collaboration(child)
            elif local in ("message", "signal"):
                names = self.messages if local == "message" else self.signals
                names[attr(child, "id")] = attr(child, "name") or attr(child, "id")
                self._only(child, {"extensionElements", "documentation"})
            elif local != "documentation":
                self.unsupported(child)
        if len(processes) != 1:
            self.problem(None, f"a definition holds exactly one process ({len(processes)} found)")
        if not processes:
            raise ProcessDefinitionInvalid(self.problems)
        process = processes[0]
        props = self._extension(process)
        self._data(process)
        graph = self._graph(process, definition_id or attr(process, "id") or "process")
        name = attr(process, "name") or str(props.get("definitionName") or "")
        graph = replace(graph, name=name)
        if self.problems:
            raise ProcessDefinitionInvalid(self.problems)
        return graph

    def _collaboration(self, element: Element) -> None:
        for child in element:
            ns, local = split_tag(child.tag)
            if ns == BPMN and local == "participant":
                self._only(child, {"extensionElements", "documentation"})
                self._extension(child)
            elif ns == BPMN and local in _COMMENTS | {"documentation", "extensionElements"}:
                continue
            else:
                self.unsupported(child)

    def _only(self, element: Element, allowed: set[str]) -> None:
        for child in element:
            ns, local = split_tag(child.tag)
            if ns != BPMN or local not in allowed:
                self.unsupported(child, attr(element, "id"))
            elif local == "extensionElements":
                self._extension(element)

    def _data(self, process: Element) -> None:
        """Variables (data objects, ProcessGPT's ``uengine:variable``) and roles (lanes)
        declared anywhere in the process, read before the nodes that use them."""
        for element in process.iter():
            ns, local = split_tag(element.tag)
            if ns == BPMN and local == "dataObject":
                name = attr(element, "name") or attr(element, "id")
                self.data_objects[attr(element, "id")] = name
                self.variables.setdefault(name, Variable(name, "any"))
            elif ns == UENGINE and local == "variable":
                name = attr(element, "name")
                if name:
                    kind = attr(element, "type").lower() or "string"
                    self.variables.setdefault(
                        name, Variable(name, kind, attr(element, "description"))
                    )
        for element in process.iter(f"{{{BPMN}}}dataObjectReference"):
            ref = attr(element, "dataObjectRef")
            name = self.data_objects.get(ref) or attr(element, "name") or attr(element, "id")
            self.data_objects[attr(element, "id")] = name
            self.variables.setdefault(name, Variable(name, "any"))
        for lane in process.iter(f"{{{BPMN}}}lane"):
            name = attr(lane, "name") or attr(lane, "id")
            props = self._extension(lane, check=False)
            resolution = props.get("roleResolutionContext")
            default = props.get("default")
            if default is None and isinstance(resolution, dict):
                default = resolution.get("endpoint")
            if isinstance(default, list):
                default = default[0] if len(default) == 1 else None
            self.roles.setdefault(name, Role(name, str(default) if default else None))
            for node_ref in lane.findall(f"{{{BPMN}}}flowNodeRef"):
                # Nested lanes come later in document order: the innermost lane wins.
                self.lane_of[(node_ref.text or "").strip()] = name

    # -- one graph ----------------------------------------------------------------------

    def _graph(self, container: Element, graph_id: str) -> ProcessGraph:
        graph = _Graph()
        for child in container:
            self._element(child, graph)
        nodes = []
        by_host: dict[str, list[BoundaryTimer]] = {}
        for host, timer in graph.boundaries:
            by_host.setdefault(host, []).append(timer)
        for node in graph.nodes:
            changes: dict[str, Any] = {}
            if node.id in by_host:
                changes["boundary"] = tuple(by_host.pop(node.id))
            if node.id in graph.defaults:
                changes["default_flow"] = graph.defaults[node.id]
            nodes.append(replace(node, **changes) if changes else node)
        for host, timers in by_host.items():
            for timer in timers:
                self.problem(timer.id, f"boundary timer attached to {host!r}, not an activity here")
        return ProcessGraph(
            id=graph_id,
            nodes=tuple(nodes),
            flows=tuple(graph.flows),
            variables=tuple(self.variables.values()),
            roles=tuple(self.roles.values()),
        )

    def _element(self, element: Element, graph: _Graph) -> None:
        ns, local = split_tag(element.tag)
        element_id = attr(element, "id")
        if ns != BPMN:
            self.unsupported(element)
            return
        if local in _SKIPPED:
            return
        if local == "extensionElements":
            self._extension_children(element, element_id)
            return
        if local == "sequenceFlow":
            graph.flows.append(self._flow(element))
            return
        default = attr(element, "default")
        if default and local in ("exclusiveGateway", "inclusiveGateway"):
            graph.defaults[element_id] = default
        if local == "boundaryEvent":
            timer = self._boundary(element)
            if timer is not None:
                graph.boundaries.append((attr(element, "attachedToRef"), timer))
            return
        node = self._node(element, local)
        if node is not None:
            graph.nodes.append(node)

    def _node(self, element: Element, local: str) -> Node | None:
        element_id, name = attr(element, "id"), attr(element, "name")
        if local in _TASKS:
            return Node(element_id, NodeKind.TASK, name, activity=self._activity(element, local))
        if local in _GATEWAYS:
            self._only(element, _FLOW_ELEMENT_CHILDREN)
            return Node(element_id, _GATEWAYS[local], name)
        if local in ("startEvent", "endEvent", "intermediateCatchEvent"):
            return self._event(element, local)
        if local == "subProcess":
            return self._subprocess(element)
        if local == "callActivity":
            self._only(element, _ACTIVITY_CHILDREN)
            self._associations(element)
            called = attr(element, "calledElement") or None
            return Node(element_id, NodeKind.CALL, name, called=called)
        self.unsupported(element)
        return None

    def _subprocess(self, element: Element) -> Node | None:
        element_id = attr(element, "id")
        if attr(element, "triggeredByEvent") == "true":
            self.problem(element_id, "unsupported BPMN element event sub-process")
            return None
        if self.depth >= MAX_NESTING:
            self.problem(element_id, f"sub-processes nested more than {MAX_NESTING} deep")
            return None
        self.depth += 1
        inner = self._graph(element, element_id)
        self.depth -= 1
        return Node(element_id, NodeKind.SUBPROCESS, attr(element, "name"), subprocess=inner)

    def _flow(self, element: Element) -> Flow:
        element_id = attr(element, "id")
        props = self._extension(element, check=False)
        expression: str | None = None
        for child in element:
            ns, local = split_tag(child.tag)
            if ns == BPMN and local == "conditionExpression":
                expression = unwrap_juel((child.text or "").strip()) or None
            elif ns != BPMN or local not in ("documentation", "extensionElements"):
                self.unsupported(child)
            elif local == "extensionElements":
                self._extension_children(child, element_id)
        mode = str(props.get("conditionMode") or "").lower()
        text = str(props.get("condition") or "").strip()
        function = str(props.get("conditionFunction") or "").strip()
        condition, condition_mode = expression or function or None, "expression"
        if text and (mode == "text" or (condition is None and mode not in ("expression", "cel"))):
            condition, condition_mode = text, "text"
        elif condition is None and text:
            condition = text
        try:
            priority = int(props.get("priority") or 0)
        except (TypeError, ValueError):
            self.problem(element_id, f"priority {props.get('priority')!r} is not a whole number")
            priority = 0
        return Flow(
            id=element_id,
            source=attr(element, "sourceRef"),
            target=attr(element, "targetRef"),
            condition=condition,
            condition_mode=condition_mode,
            priority=priority,
            name=attr(element, "name"),
        )

    def _event(self, element: Element, local: str) -> Node | None:
        element_id, name = attr(element, "id"), attr(element, "name")
        definition = self._definition(element)
        kind_of: NodeKind | None = None
        timer: TimerSpec | None = None
        event_name: str | None = None
        if definition is None and local in ("startEvent", "endEvent"):
            kind_of = NodeKind.START if local == "startEvent" else NodeKind.END
        elif definition is not None and split_tag(definition.tag)[1] == "timerEventDefinition":
            if local in ("startEvent", "intermediateCatchEvent"):
                kind_of = NodeKind.START if local == "startEvent" else NodeKind.TIMER
                timer = self._timer(element_id, definition)
        elif definition is not None and local == "intermediateCatchEvent":
            what = split_tag(definition.tag)[1]
            if what == "messageEventDefinition":
                ref = attr(definition, "messageRef")
                kind_of, event_name = NodeKind.MESSAGE, self.messages.get(ref) or name or ref
            elif what == "signalEventDefinition":
                ref = attr(definition, "signalRef")
                kind_of, event_name = NodeKind.SIGNAL, self.signals.get(ref) or name or ref
        if kind_of is None:
            what = split_tag(definition.tag)[1] if definition is not None else "no definition"
            self.problem(element_id, f"unsupported BPMN element {local} ({what})")
            return None
        return Node(element_id, kind_of, name, timer=timer, event_name=event_name or None)

    def _definition(self, element: Element) -> Element | None:
        """The event's one event definition (others are reported); its other children are
        checked."""
        found: Element | None = None
        for child in element:
            ns, local = split_tag(child.tag)
            if ns == BPMN and local.endswith("EventDefinition"):
                if found is not None:
                    self.problem(attr(element, "id"), "several event definitions")
                found = child
            elif ns != BPMN or local not in _FLOW_ELEMENT_CHILDREN:
                self.unsupported(child)
            elif local == "extensionElements":
                self._extension_children(child, attr(element, "id"))
        return found

    def _boundary(self, element: Element) -> BoundaryTimer | None:
        element_id = attr(element, "id")
        definition = self._definition(element)
        if definition is None or split_tag(definition.tag)[1] != "timerEventDefinition":
            what = split_tag(definition.tag)[1] if definition is not None else "no definition"
            self.problem(element_id, f"unsupported BPMN element boundaryEvent ({what})")
            return None
        timer = self._timer(element_id, definition)
        if timer is None:
            return None
        interrupting = attr(element, "cancelActivity").lower() != "false"
        return BoundaryTimer(element_id, timer, interrupting, attr(element, "name"))

    def _timer(self, element_id: str, definition: Element) -> TimerSpec | None:
        values: dict[str, str] = {}
        for child in definition:
            ns, local = split_tag(child.tag)
            if ns == BPMN and local in ("timeDuration", "timeDate", "timeCycle"):
                values[local] = (child.text or "").strip()
            elif ns != BPMN or local not in ("documentation", "extensionElements"):
                self.unsupported(child)
        if len(values) != 1 or not next(iter(values.values())):
            self.problem(element_id, "a timer needs one of timeDuration, timeDate or timeCycle")
            return None
        return TimerSpec(
            duration=values.get("timeDuration"),
            date=values.get("timeDate"),
            cycle=values.get("timeCycle"),
        )

    def _activity(self, element: Element, local: str) -> Activity:
        element_id = attr(element, "id")
        allowed = _ACTIVITY_CHILDREN | ({"script"} if local == "scriptTask" else set())
        self._only(element, allowed)
        props = self._extension(element, check=False)
        script = element.find(f"{{{BPMN}}}script")
        documentation = element.find(f"{{{BPMN}}}documentation")
        inputs, outputs = self._associations(element)
        form = (
            str(props.get("form") or "")
            or attr(element, f"{{{CAMUNDA}}}formKey")
            or str(props.get("formKey") or "")
        )
        tool = str(props.get("tool") or "") or (f"formHandler:{form}" if form else "")
        form_id = tool.removeprefix("formHandler:") if tool.startswith("formHandler:") else None
        mode_text = str(props.get("agentMode") or "none").lower()
        try:
            mode = AgentMode(mode_text)
        except ValueError:
            self.problem(element_id, f"agentMode {mode_text!r} is not none, draft or complete")
            mode = AgentMode.NONE
        duration: float | None = None
        if props.get("duration") not in (None, ""):
            try:
                duration = float(props["duration"])
            except (TypeError, ValueError):
                self.problem(element_id, f"duration {props['duration']!r} is not a number of days")
        role = props.get("role")
        if isinstance(role, dict):
            role = role.get("name")
        instruction = (
            str(props.get("instruction") or "")
            or str(props.get("description") or "")
            or (documentation.text or "" if documentation is not None else "")
            or (script.text or "" if script is not None else "")
        )
        orchestration = str(props.get("orchestration") or "") or None
        return Activity(
            task_type=_TASKS[local],
            role=str(role or "") or self.lane_of.get(element_id),
            tool=tool or None,
            form_id=form_id or None,
            instruction=instruction.strip(),
            input_data=tuple(dict.fromkeys([*setting_names(props.get("inputData")), *inputs])),
            output_data=tuple(dict.fromkeys([*setting_names(props.get("outputData")), *outputs])),
            duration_days=duration,
            agent=str(props.get("agent") or "") or None,
            agent_mode=mode,
            orchestration=None if orchestration == "none" else orchestration,
        )

    def _associations(self, element: Element) -> tuple[list[str], list[str]]:
        """The variables a step reads (``dataInputAssociation``) and writes
        (``dataOutputAssociation``)."""
        inputs: list[str] = []
        outputs: list[str] = []
        for tag, into, ref in (
            ("dataInputAssociation", inputs, "sourceRef"),
            ("dataOutputAssociation", outputs, "targetRef"),
        ):
            for assoc in element.findall(f"{{{BPMN}}}{tag}"):
                for child in assoc:
                    ns, local = split_tag(child.tag)
                    if ns == BPMN and local == ref:
                        name = self.data_objects.get((child.text or "").strip())
                        if name:
                            into.append(name)
                    elif ns != BPMN or local not in ("sourceRef", "targetRef"):
                        self.unsupported(child)
        return inputs, outputs
