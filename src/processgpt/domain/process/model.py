"""The internal model of a process definition: a graph of nodes and sequence flows.

Both input formats compile to it: ProcessGPT's definition JSON (:mod:`.processgpt_json`) and
BPMN 2.0 XML (:mod:`.bpmn`). It is what is validated at publish (:mod:`.validate`), stored
with each immutable version, and walked by the engine (:mod:`.engine`). Pure data: no I/O.

Contract:

* Node and flow ids are unique within a graph (a sub-process's nodes live in its own graph).
* ``Flow.condition`` is a CEL expression over the process variables (``condition_mode``
  ``"expression"``), or a sentence an agent judges (``"text"``: ProcessGPT's natural-language
  conditions). Definitions never carry code: nothing in a graph is ever ``eval``-ed.
* A graph round-trips through :meth:`ProcessGraph.to_json` / :meth:`ProcessGraph.from_json`
  unchanged (that JSON is what ``proc_def.definition`` stores).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class NodeKind(enum.StrEnum):
    START = "start"
    """Where a token is born when an instance starts (a timer start: a schedule)."""
    END = "end"
    """Consumes a token; the instance completes when no token is left."""
    TASK = "task"
    """An activity: a person's step or an agent's (see :class:`Activity`)."""
    EXCLUSIVE = "exclusive"
    """XOR gateway: the first flow (by priority, then document order) whose condition holds,
    else the default flow; none and no default: an incident."""
    PARALLEL = "parallel"
    """AND gateway: a split sends a token down every outgoing flow; a join waits for a token
    on every incoming flow."""
    INCLUSIVE = "inclusive"
    """OR gateway: a split sends a token down every flow whose condition holds (or the
    default); its join waits for exactly the branches that split activated."""
    TIMER = "timer"
    """An intermediate timer catch event: the token waits until the timer is due."""
    MESSAGE = "message"
    """An intermediate message catch event: the token waits for a message of that name."""
    SIGNAL = "signal"
    """An intermediate signal catch event: the token waits for a signal of that name."""
    CALL = "call"
    """A call activity: runs another definition as a child instance; continues when the
    child completes."""
    SUBPROCESS = "subprocess"
    """An embedded sub-process: its own graph, run as a child instance."""


class TaskType(enum.StrEnum):
    USER = "user"
    SERVICE = "service"
    SCRIPT = "script"
    MANUAL = "manual"


class AgentMode(enum.StrEnum):
    NONE = "none"
    """A person does the step (worklist)."""
    DRAFT = "draft"
    """An agent writes a draft (``todolist.draft``) that a person edits and completes."""
    COMPLETE = "complete"
    """The agent's result completes the step."""


@dataclass(frozen=True)
class TimerSpec:
    """When a timer is due: an ISO 8601 ``duration`` (``PT15M``, ``P2D``) from the moment the
    token arrives, or an ISO 8601 ``date``; on START nodes only, a ``cycle`` (a schedule: an
    ISO 8601 repeating interval ``R/PT1H`` / ``R3/2025-01-01T00:00:00Z/P1D``, or a five-field
    cron expression). Exactly one is set."""

    duration: str | None = None
    date: str | None = None
    cycle: str | None = None


@dataclass(frozen=True)
class Activity:
    """What a TASK node asks for. ``agent_mode`` NONE (or a ``user``/``manual`` task without
    an agent) is a person's step; otherwise ``agent`` (an agent profile or orchestrator name)
    runs it with ``instruction`` and the values of ``input_data``; ``output_data`` names the
    variables its result writes. ``form_id`` comes from ``tool`` ``formHandler:<form id>``."""

    task_type: TaskType = TaskType.USER
    role: str | None = None
    tool: str | None = None
    form_id: str | None = None
    instruction: str = ""
    input_data: tuple[str, ...] = ()
    output_data: tuple[str, ...] = ()
    duration_days: float | None = None
    """SLA: the step is due this many days after it starts."""
    agent: str | None = None
    agent_mode: AgentMode = AgentMode.NONE
    orchestration: str | None = None


@dataclass(frozen=True)
class BoundaryTimer:
    """A timer attached to a TASK (or CALL/SUBPROCESS) node: when due, a token leaves by
    ``target_flows``; ``interrupting`` cancels the activity it is attached to."""

    id: str
    timer: TimerSpec
    interrupting: bool = True
    name: str = ""


@dataclass(frozen=True)
class Node:
    id: str
    kind: NodeKind
    name: str = ""
    activity: Activity | None = None
    """TASK nodes only."""
    default_flow: str | None = None
    """EXCLUSIVE / INCLUSIVE gateways: the flow taken when no condition holds."""
    timer: TimerSpec | None = None
    """TIMER nodes, and START nodes that are timer starts."""
    event_name: str | None = None
    """MESSAGE / SIGNAL nodes: the name a message or signal must carry."""
    called: str | None = None
    """CALL nodes: the definition id to run (its latest version when the call starts)."""
    subprocess: ProcessGraph | None = None
    """SUBPROCESS nodes: the embedded graph."""
    boundary: tuple[BoundaryTimer, ...] = ()
    """Boundary timers attached to this node; their outgoing flows have the timer's id as
    ``source``."""


@dataclass(frozen=True)
class Flow:
    id: str
    source: str
    target: str
    condition: str | None = None
    condition_mode: str = "expression"
    """``expression`` (CEL) or ``text`` (judged by an agent before the step commits)."""
    priority: int = 0
    """Exclusive/inclusive splits evaluate lower numbers first; ties keep document order."""
    name: str = ""


@dataclass(frozen=True)
class Variable:
    """A process variable the definition declares (ProcessGPT ``data[]``, BPMN data objects).
    ``type`` is informative (``string``, ``number``, ``boolean``, ``object``, ``array``)."""

    name: str
    type: str = "string"
    description: str = ""
    path: str | None = None
    """Where the value is read from when it is not a variable of its own: a dotted path into
    the instance's variables (``form_id.field``: ProcessGPT gateways' ``conditionData``).
    None: the instance variable ``name``."""


@dataclass(frozen=True)
class Role:
    """A role of the definition (ProcessGPT ``roles[]``, BPMN lanes). ``default`` is the user
    or group a step of this role goes to when the start binds nobody to it."""

    name: str
    default: str | None = None


@dataclass(frozen=True)
class ProcessGraph:
    """A whole definition, ready to run. ``nodes`` and ``flows`` keep document order."""

    id: str
    name: str = ""
    nodes: tuple[Node, ...] = ()
    flows: tuple[Flow, ...] = ()
    variables: tuple[Variable, ...] = ()
    roles: tuple[Role, ...] = ()
    _by_id: dict[str, Node] = field(default_factory=dict, compare=False, repr=False)
    _out: dict[str, tuple[Flow, ...]] = field(default_factory=dict, compare=False, repr=False)
    _in: dict[str, tuple[Flow, ...]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        by_id = {n.id: n for n in self.nodes}
        out: dict[str, list[Flow]] = {}
        inc: dict[str, list[Flow]] = {}
        for flow in self.flows:
            out.setdefault(flow.source, []).append(flow)
            inc.setdefault(flow.target, []).append(flow)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_out", {k: tuple(v) for k, v in out.items()})
        object.__setattr__(self, "_in", {k: tuple(v) for k, v in inc.items()})

    def node(self, node_id: str) -> Node:
        return self._by_id[node_id]

    def has_node(self, node_id: str) -> bool:
        return node_id in self._by_id

    def outgoing(self, source_id: str) -> tuple[Flow, ...]:
        """Flows leaving a node (or a boundary timer, by its id), in document order."""
        return self._out.get(source_id, ())

    def incoming(self, node_id: str) -> tuple[Flow, ...]:
        return self._in.get(node_id, ())

    @property
    def starts(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.kind is NodeKind.START)

    def to_json(self) -> dict[str, Any]:
        """The graph as JSON (what ``proc_def.definition`` stores)."""
        return {
            "id": self.id,
            "name": self.name,
            "nodes": [_node_json(n) for n in self.nodes],
            "flows": [asdict(f) for f in self.flows],
            "variables": [asdict(v) for v in self.variables],
            "roles": [asdict(r) for r in self.roles],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessGraph:
        return cls(
            id=data["id"],
            name=data.get("name", ""),
            nodes=tuple(_node_from_json(n) for n in data.get("nodes", [])),
            flows=tuple(Flow(**f) for f in data.get("flows", [])),
            variables=tuple(Variable(**v) for v in data.get("variables", [])),
            roles=tuple(Role(**r) for r in data.get("roles", [])),
        )


def _node_json(node: Node) -> dict[str, Any]:
    data: dict[str, Any] = {"id": node.id, "kind": node.kind.value, "name": node.name}
    if node.activity is not None:
        activity = asdict(node.activity)
        activity["input_data"] = list(node.activity.input_data)
        activity["output_data"] = list(node.activity.output_data)
        data["activity"] = activity
    if node.default_flow is not None:
        data["default_flow"] = node.default_flow
    if node.timer is not None:
        data["timer"] = asdict(node.timer)
    if node.event_name is not None:
        data["event_name"] = node.event_name
    if node.called is not None:
        data["called"] = node.called
    if node.subprocess is not None:
        data["subprocess"] = node.subprocess.to_json()
    if node.boundary:
        data["boundary"] = [asdict(b) for b in node.boundary]
    return data


def _node_from_json(data: dict[str, Any]) -> Node:
    activity = data.get("activity")
    return Node(
        id=data["id"],
        kind=NodeKind(data["kind"]),
        name=data.get("name", ""),
        activity=None
        if activity is None
        else Activity(
            **{
                **activity,
                "task_type": TaskType(activity.get("task_type", TaskType.USER)),
                "agent_mode": AgentMode(activity.get("agent_mode", AgentMode.NONE)),
                "input_data": tuple(activity.get("input_data", ())),
                "output_data": tuple(activity.get("output_data", ())),
            }
        ),
        default_flow=data.get("default_flow"),
        timer=TimerSpec(**data["timer"]) if data.get("timer") else None,
        event_name=data.get("event_name"),
        called=data.get("called"),
        subprocess=ProcessGraph.from_json(data["subprocess"]) if data.get("subprocess") else None,
        boundary=tuple(
            BoundaryTimer(
                id=b["id"],
                timer=TimerSpec(**b["timer"]),
                interrupting=b.get("interrupting", True),
                name=b.get("name", ""),
            )
            for b in data.get("boundary", ())
        ),
    )
