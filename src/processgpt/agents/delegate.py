"""The built-in ``delegate`` tool: an agent asks another agent and uses its answer.

Arguments: ``{"agent": NAME, "message": TEXT}`` for a local agent, or ``{"url": A2A_URL,
"message": TEXT}`` for a remote A2A agent. From the caller's side the call is synchronous
with a timeout (``PROCESSGPT_DELEGATE_TIMEOUT``, 300 s); the llm agent records it in the
caller's log like any tool call (``tool_usage_started`` / ``tool_usage_finished``).

- Local: a child task is submitted through the queue (``TaskRepository.submit``, the caller's
  tenant and process instance, ``input = {"delegated_by": <caller task id>}``, idempotency key
  ``delegate:<caller task id>:<tool call id>`` so a repeated call does not run twice), so it
  runs on whichever worker serves that agent. The caller waits for it by polling the row
  (0.2 s growing to 1 s): cheap, and independent of a LISTEN connection. The answer is the
  child's output; FAILED, CANCELLED or INPUT_REQUIRED is an error for the model. On timeout, or
  when the caller is cancelled, the child is cancelled too.
  The database handle: the executor is built by the registry with no arguments, so
  :class:`Delegator` takes an optional :class:`Database` (tests, embedding code) or else opens
  a small pool (2 connections) lazily from ``DATABASE_URL`` / ``PROCESSGPT_DATABASE_URL``,
  closed by the executor's ``aclose()``. Without either, local delegation is not offered.
- Remote: a2a-sdk's client (``create_client``, non-streaming ``SendMessage``), only to URLs
  under a prefix in ``PROCESSGPT_DELEGATE_URLS`` (comma-separated; empty: remote delegation
  off — a model, and so a tenant, must not be able to make the worker call arbitrary URLs).
  A URL is under a prefix when its scheme, host and port are the prefix's and its path is
  the prefix's path or below it (compared parsed, never as text: ``https://a.example.evil``
  or ``https://a.example@evil`` are not under ``https://a.example``); a URL with userinfo is
  refused. The check applies to every request of the call (the agent card may name another
  URL; redirects are not followed), so the token never leaves the listed agents. The
  operator lists these URLs, so they may be internal: the network guard of tenants' MCP
  servers does not apply. When ``PROCESSGPT_DELEGATE_TOKEN`` is set it is sent as
  ``Authorization: Bearer`` to those URLs. The answer is the completed task's artifacts (or
  the reply message) as text.

Settings: :class:`~processgpt.config.DelegateSettings` (``PROCESSGPT_DELEGATE_*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from processgpt import tracing
from processgpt.agents.registry import available
from processgpt.config import DelegateSettings, Settings
from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.errors import ProcessGPTError
from processgpt.domain.task import Task, TaskStatus, TaskSubmission
from processgpt.tools.mcp import ToolOutcome

if TYPE_CHECKING:
    import httpx

DELEGATE = "delegate"
DEFAULT_TIMEOUT = 300.0

DELEGATE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": DELEGATE,
        "description": (
            "Ask another agent to do something and wait for its answer. Name a local agent "
            "with 'agent', or a remote A2A agent with 'url'."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "agent": {"type": "string", "description": "A local agent's name."},
                "url": {"type": "string", "description": "A remote A2A agent's URL."},
                "message": {"type": "string", "description": "What to ask the agent."},
            },
            "required": ["message"],
        },
    },
}


def _error(problem: str) -> ToolOutcome:
    return ToolOutcome(text=f"Error: {problem}", error=problem)


def _answer(value: Any) -> ToolOutcome:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return ToolOutcome(text=text, output=value)


class Delegator:
    """Runs ``delegate`` calls for one executor; owns the pool it opened."""

    def __init__(
        self,
        *,
        database: Database | None = None,
        database_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        remote_prefixes: tuple[str, ...] = (),
        remote_token: str | None = None,
    ) -> None:
        self._db = database
        self._owns_db = False
        self._dsn = database_url
        self._lock = asyncio.Lock()
        self.timeout = timeout
        self.remote_prefixes = remote_prefixes
        self._remote_token = remote_token

    @classmethod
    def from_settings(
        cls,
        settings: DelegateSettings,
        *,
        database: Database | None = None,
        database_url: str | None = None,
    ) -> Delegator:
        prefixes = tuple(p.strip() for p in settings.urls.split(",") if p.strip())
        return cls(
            database=database,
            database_url=database_url,
            timeout=settings.timeout,
            remote_prefixes=prefixes,
            remote_token=settings.token.get_secret_value() if settings.token else None,
        )

    @classmethod
    def from_env(cls, *, database: Database | None = None) -> Delegator:
        """:meth:`from_settings` with the settings of the environment
        (``PROCESSGPT_DELEGATE_*``, and ``DATABASE_URL`` for local delegation)."""
        return cls.from_settings(
            DelegateSettings(), database=database, database_url=Settings().database_url
        )

    @property
    def available(self) -> bool:
        """Whether the tool can do anything here (offered to the model only then)."""
        return self._db is not None or bool(self._dsn) or bool(self.remote_prefixes)

    async def aclose(self) -> None:
        if self._owns_db and self._db is not None:
            await self._db.close()
            self._db = None
            self._owns_db = False

    async def _database(self) -> Database | None:
        async with self._lock:
            if self._db is None and self._dsn:
                self._db = await Database.connect(self._dsn, max_size=2)
                self._owns_db = True
            return self._db

    async def call(
        self, row: Mapping[str, Any], call_id: str, arguments: Mapping[str, Any]
    ) -> ToolOutcome:
        message = arguments.get("message")
        agent, url = arguments.get("agent"), arguments.get("url")
        if not isinstance(message, str) or not message.strip():
            return _error("delegate needs a message")
        if bool(agent) == bool(url):
            return _error("delegate needs either 'agent' (a local agent) or 'url' (A2A)")
        try:
            if agent:
                outcome, _ = await self.local(row, call_id, str(agent), message)
                return outcome
            return await self._remote(str(url), message)
        except TimeoutError:
            return _error(f"the agent did not answer within {self.timeout:g}s")

    async def local(
        self, row: Mapping[str, Any], call_id: str, agent: str, message: str
    ) -> tuple[ToolOutcome, uuid.UUID | None]:
        """Run ``message`` as a child task of the local ``agent`` for the task ``row`` and wait
        for it (``call_id`` makes the idempotency key). Returns the outcome and the child's id
        (None when it could not be submitted). On timeout, or when the caller is cancelled,
        the child is cancelled; a timeout is an error outcome."""
        db = await self._database()
        if db is None:
            return _error("local delegation needs DATABASE_URL on this worker"), None
        repo = TaskRepository(db)
        tenant = str(row["tenant_id"])
        parent = str(row["id"])
        proc_inst = row.get("proc_inst_id")
        trace_context = tracing.current_context()  # the child's run links to this run
        try:
            sub = TaskSubmission(
                agent_orch=agent,
                query=message,
                input={"delegated_by": parent},
                idempotency_key=f"delegate:{parent}:{call_id}"[:200],
                proc_inst_id=uuid.UUID(str(proc_inst)) if proc_inst else None,
                traceparent=trace_context[0],
                tracestate=trace_context[1],
            )
            child, _ = await repo.submit(tenant, sub, known_agents=frozenset(available()))
        except ProcessGPTError as exc:
            return _error(exc.message), None
        except ValueError as exc:
            return _error(f"cannot delegate to {agent!r}: {exc}"), None
        try:
            task = await asyncio.wait_for(self._wait(repo, tenant, child.id), self.timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            with contextlib.suppress(ProcessGPTError):
                await asyncio.shield(repo.cancel(tenant, child.id, "the delegating task stopped"))
            if isinstance(exc, TimeoutError):
                return _error(f"the agent did not answer within {self.timeout:g}s"), child.id
            raise
        return _child_outcome(agent, task), child.id

    @staticmethod
    async def _wait(repo: TaskRepository, tenant: str, task_id: uuid.UUID) -> Task:
        delay = 0.2
        stop = {TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED}
        stop.add(TaskStatus.INPUT_REQUIRED)
        while True:
            task = await repo.get(tenant, task_id)
            if task.status in stop:
                return task
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def _remote(self, url: str, message: str) -> ToolOutcome:
        if not url_under(url, self.remote_prefixes):
            return _error("remote delegation to this URL is not allowed (PROCESSGPT_DELEGATE_URLS)")
        # The host only: a URL's path or query may hold what a span must not.
        attributes = {"server.address": urlsplit(url).hostname or "", "rpc.system": "a2a"}
        with tracing.span("a2a.send_message", attributes, client=True) as span:
            outcome = await self._send(url, message)
            if outcome.error:
                tracing.failed(span, "a2a_error")
        return outcome

    async def _send(self, url: str, message: str) -> ToolOutcome:
        import httpx  # noqa: PLC0415 - only remote delegation needs them
        from a2a.client import ClientConfig, create_client  # noqa: PLC0415
        from a2a.helpers import get_message_text, new_text_message  # noqa: PLC0415
        from a2a.types import Role, SendMessageRequest  # noqa: PLC0415

        headers = {"Authorization": f"Bearer {self._remote_token}"} if self._remote_token else {}
        headers |= tracing.outbound_headers()  # the remote agent joins the trace
        async with (
            asyncio.timeout(self.timeout),
            httpx.AsyncClient(
                headers=headers,
                timeout=self.timeout,
                follow_redirects=False,
                event_hooks={"request": [self._only_listed_urls]},
            ) as http,
        ):
            try:
                client = await create_client(
                    url, client_config=ClientConfig(streaming=False, httpx_client=http)
                )
            except Exception as exc:  # noqa: BLE001 - any failure goes back to the model
                return _error(f"cannot reach the A2A agent: {type(exc).__name__}: {exc}")
            request = new_text_message(message)
            request.role = Role.ROLE_USER
            request.message_id = str(uuid.uuid4())
            try:
                async for response in client.send_message(SendMessageRequest(message=request)):
                    if response.HasField("message"):
                        return _answer(get_message_text(response.message))
                    if response.HasField("task"):
                        return _task_outcome(response.task)
            except Exception as exc:  # noqa: BLE001
                return _error(f"the A2A call failed: {type(exc).__name__}: {exc}")
            finally:
                await client.close()
        return _error("the A2A agent sent no answer")

    async def _only_listed_urls(self, request: httpx.Request) -> None:
        """Every request of a remote call (the card's URL included) stays under the listed
        prefixes: the bearer token is never sent anywhere else."""
        if not url_under(str(request.url), self.remote_prefixes):
            import httpx  # noqa: PLC0415

            raise httpx.ConnectError(
                "the agent card points outside PROCESSGPT_DELEGATE_URLS", request=request
            )


def url_under(url: str, prefixes: Iterable[str]) -> bool:
    """Whether ``url`` is under one of ``prefixes``: same scheme, host and port, and a path
    equal to or below the prefix's (compared parsed; a URL with userinfo never is)."""
    try:
        target = urlsplit(url)
        target_port = target.port
    except ValueError:
        return False
    if target.username is not None or target.password is not None or not target.hostname:
        return False
    for prefix in prefixes:
        try:
            allowed = urlsplit(prefix)
            allowed_port = allowed.port
        except ValueError:
            continue
        if (
            target.scheme.lower() == allowed.scheme.lower()
            and target.hostname == allowed.hostname
            and _port(target.scheme, target_port) == _port(allowed.scheme, allowed_port)
            and _path_under(target.path, allowed.path)
        ):
            return True
    return False


def _port(scheme: str, port: int | None) -> int | None:
    return port if port is not None else {"http": 80, "https": 443}.get(scheme.lower())


def _path_under(path: str, prefix: str) -> bool:
    if prefix in ("", "/"):
        return True
    if prefix.endswith("/"):
        return path.startswith(prefix) or path == prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def _child_outcome(agent: str, task: Task) -> ToolOutcome:
    """A local child task's answer: its output when DONE, else an error for the caller."""
    if task.status is TaskStatus.DONE:
        return _answer(task.output)
    if task.status is TaskStatus.INPUT_REQUIRED:
        return _error(f"agent {agent!r} needs input from a person (task {task.id})")
    reason = (task.error or {}).get("message") or task.status.value.lower()
    return _error(f"agent {agent!r} did not finish: {reason} (task {task.id})")


def _task_outcome(task: Any) -> ToolOutcome:
    """The answer in a remote A2A task: its artifacts when completed, else an error."""
    from a2a.helpers import get_message_text  # noqa: PLC0415
    from a2a.types import TaskState  # noqa: PLC0415

    if task.status.state != TaskState.TASK_STATE_COMPLETED:
        state = TaskState.Name(task.status.state)
        detail = get_message_text(task.status.message)
        return _error(f"the A2A agent ended in {state}: {detail}")
    return _answer(_artifacts(task.artifacts))


def _artifacts(artifacts: Any) -> Any:
    """A task's artifacts as one value: a single data part as its JSON, else the text."""
    from google.protobuf.json_format import MessageToDict  # noqa: PLC0415

    values: list[Any] = []
    for artifact in artifacts:
        for part in artifact.parts:
            if part.HasField("data"):
                values.append(MessageToDict(part)["data"])
            elif part.HasField("text"):
                values.append(_parsed(part.text))
    if len(values) == 1:
        return values[0]
    return "\n".join(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values)


def _parsed(text: str) -> Any:
    """JSON text as JSON, other text as is (the ProcessGPT rule)."""
    try:
        return json.loads(text)
    except ValueError:
        return text
