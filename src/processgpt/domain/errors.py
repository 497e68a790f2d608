"""The error hierarchy shared by every layer and transport.

Every error the product raises on purpose derives from :class:`ProcessGPTError` and carries a
stable ``code``; :data:`ERROR_STATUS` maps each code to the HTTP status used by the API (and the
same code is used by the WebSocket and A2A transports). Messages never contain secrets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


class ProcessGPTError(Exception):
    """Base of all errors raised on purpose by processgpt. ``details``: optional structured
    problems (a list of JSON objects) that every transport carries beside the message."""

    code: ClassVar[str] = "internal_error"
    details: list[dict[str, Any]] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ProcessGPTError):
    """The caller sent something the runtime refuses; nothing was written."""

    code = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownAgent(InvalidInput):
    """No orchestrator (or agent profile of the tenant) has that name. ``available``: the names
    there are, when the raiser knows them (the message lists them)."""

    code = "unknown_agent"

    def __init__(self, agent_orch: str, available: Iterable[str] | None = None) -> None:
        message = f"no agent named {agent_orch!r}"
        if available is not None:
            names = sorted(set(available))
            shown = ", ".join(names[:_NAMES_SHOWN]) + (", …" if len(names) > _NAMES_SHOWN else "")
            message += f"; agents: {shown}" if names else "; no agents are registered yet"
        super().__init__(message, field="agent_orch")
        self.agent_orch = agent_orch


_NAMES_SHOWN = 30


class PayloadTooLarge(InvalidInput):
    """A field or event exceeds its size limit."""

    code = "payload_too_large"


class InvalidConfiguration(ProcessGPTError):
    """The process's configuration (environment, flags) cannot work; the message names what
    to set. Raised at start, before anything runs."""

    code = "invalid_configuration"


class TaskNotFound(ProcessGPTError):
    """No task with that id exists for the caller's tenant."""

    code = "task_not_found"

    def __init__(self, task_id: object) -> None:
        super().__init__(f"task {task_id} not found")
        self.task_id = task_id


class ProcessNotFound(ProcessGPTError):
    """No process instance with that id exists for the caller's tenant."""

    code = "process_not_found"

    def __init__(self, proc_inst_id: object) -> None:
        super().__init__(f"process instance {proc_inst_id} not found")
        self.proc_inst_id = proc_inst_id


class Unauthorized(ProcessGPTError):
    """No valid API key or token was presented."""

    code = "unauthorized"


class Forbidden(ProcessGPTError):
    """The caller is authenticated but its role does not allow the action."""

    code = "forbidden"


class DatabaseUnavailable(ProcessGPTError):
    """The database cannot be reached or is restarting; the same request may succeed after
    ``retry_after`` seconds. Nothing was changed, or the change was rolled back."""

    code = "database_unavailable"

    def __init__(self, message: str = "the database is unavailable", retry_after: int = 2):
        super().__init__(message)
        self.retry_after = retry_after


class TooManyPending(ProcessGPTError):
    """The tenant has more pending tasks than its limit; retry after ``retry_after`` seconds."""

    code = "too_many_pending"

    def __init__(self, pending: int, limit: int, retry_after: int = 5) -> None:
        super().__init__(
            f"{pending} tasks are pending for this tenant (limit {limit}); retry later"
        )
        self.retry_after = retry_after


class InvalidTransition(ProcessGPTError):
    """The task is not in a state that allows the requested change."""

    code = "invalid_state"

    def __init__(self, task_id: object, status: str, action: str) -> None:
        super().__init__(f"task {task_id} is {status}; cannot {action}")
        self.task_id = task_id
        self.status = status
        self.action = action


class ProcessEventRejected(InvalidTransition):
    """An event the process instance cannot take as it is (a step that is not open, a timer
    not armed, no token waiting for the message, no such incident, a finished instance).
    Nothing changed. Same code as :class:`InvalidTransition` (409)."""

    def __init__(self, proc_inst_id: object, reason: str) -> None:
        ProcessGPTError.__init__(self, f"process instance {proc_inst_id}: {reason}")
        self.task_id = proc_inst_id
        self.status = ""
        self.action = reason


class LeaseLost(ProcessGPTError):
    """A worker tried to write for a task it no longer owns (fencing rejected the write)."""

    code = "lease_lost"

    def __init__(self, task_id: object) -> None:
        super().__init__(f"lease on task {task_id} was lost; the write was rejected")
        self.task_id = task_id


class EventBufferFull(ProcessGPTError):
    """An executor produced events faster than they can be written and did not await them."""

    code = "event_buffer_full"


class ExecutorReturnedWithoutResult(ProcessGPTError):
    """The executor returned without a final artifact, a completed state or a request for input."""

    code = "no_result"


class RetryLater(ProcessGPTError):
    """Raised by an executor to ask for a retry after ``delay`` seconds (counts as an attempt)."""

    code = "retry_later"

    def __init__(self, reason: str, *, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class ChatBusy(ProcessGPTError):
    """The chat already has a connected client, or a reply that is still being produced."""

    code = "chat_busy"


class MalformedMessage(InvalidInput):
    """A WebSocket client sent a frame that is not a valid client message."""

    code = "malformed_message"


class AgentFailed(ProcessGPTError):
    """The task answering a chat message ended FAILED (``details`` says why)."""

    code = "agent_failed"


class AgentCancelled(ProcessGPTError):
    """The task answering a chat message was cancelled."""

    code = "agent_cancelled"


class AgentProfileNotFound(ProcessGPTError):
    """No agent profile of that name exists for the caller's tenant."""

    code = "agent_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"agent profile {name!r} not found")
        self.name = name


class McpServerNotFound(ProcessGPTError):
    """No MCP server of that name exists for the caller's tenant."""

    code = "mcp_server_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"MCP server {name!r} not found")
        self.name = name


class ApiKeyNotFound(ProcessGPTError):
    """The tenant has no valid API key with that prefix."""

    code = "key_not_found"

    def __init__(self, prefix: str) -> None:
        super().__init__(f"no valid API key with prefix {prefix!r}")
        self.prefix = prefix


class TenantNotFound(ProcessGPTError):
    """No tenant with that id exists."""

    code = "tenant_not_found"

    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant {tenant_id!r} not found")
        self.tenant_id = tenant_id


class NameTaken(ProcessGPTError):
    """An agent profile or MCP server of that name already exists (or the name is reserved)."""

    code = "name_taken"


class StdioNotAllowed(InvalidInput):
    """A tenant named a command to run (a stdio MCP server): commands on worker hosts come
    only from the operator's configuration (``mcp.json``, or its ``tenantCatalog``)."""

    code = "stdio_not_allowed"


class UrlNotAllowed(InvalidInput):
    """A tenant's URL points where tenants may not reach (loopback, private, link-local,
    multicast, reserved addresses) or is not an http(s) URL."""

    code = "url_not_allowed"


class UnknownMcpCatalogEntry(InvalidInput):
    """No entry of that name in the operator's MCP catalog is offered to the tenant."""

    code = "unknown_mcp_catalog_entry"


class TooManyMcpServers(ProcessGPTError):
    """The tenant has as many MCP servers as the operator allows; nothing was added."""

    code = "too_many_mcp_servers"


class SecretsUnavailable(ProcessGPTError):
    """A stored secret cannot be sealed or opened: no key is configured, a key is malformed,
    or none of the keys opens the value (the message says which, never a key or a value)."""

    code = "secrets_unavailable"


class ConditionError(ProcessGPTError):
    """A sequence flow's condition cannot be compiled or checked (at publish), or evaluated
    (at run time: the engine turns it into an incident). The message says why, never a
    variable's value."""

    code = "condition_error"


@dataclass(frozen=True)
class DefinitionProblem:
    """One problem of a process definition: ``id`` of the element (node, flow, variable…;
    None for the definition as a whole) and what is wrong with it."""

    id: str | None
    problem: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "problem": self.problem}

    def __str__(self) -> str:
        return f"{self.id}: {self.problem}" if self.id is not None else self.problem


class ProcessDefinitionInvalid(InvalidInput):
    """A process definition cannot be published. ``problems`` lists every problem found (the
    message has them one per line; ``details`` the same as objects ``{"id", "problem"}``).
    Nothing was stored."""

    code = "definition_invalid"

    def __init__(self, problems: Sequence[DefinitionProblem]) -> None:
        problems = list(problems)
        shown = problems[:_PROBLEMS_IN_MESSAGE]
        lines = [str(p) for p in shown]
        if len(problems) > len(shown):
            lines.append(f"… and {len(problems) - len(shown)} more (see details)")
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"the process definition has {count}:\n" + "\n".join(lines))
        self.problems = problems
        self.details = [p.as_json() for p in problems]


_PROBLEMS_IN_MESSAGE = 50


class ProcessDefinitionNotFound(ProcessGPTError):
    """No process definition (or no such version of it) exists for the caller's tenant."""

    code = "definition_not_found"

    def __init__(self, definition_id: str, version: int | None = None) -> None:
        what = f"version {version} of " if version is not None else ""
        super().__init__(f"{what}process definition {definition_id!r} not found")
        self.definition_id = definition_id
        self.version = version


class FormNotFound(ProcessGPTError):
    """No form of that id is stored for the caller's tenant."""

    code = "form_not_found"

    def __init__(self, form_id: str) -> None:
        super().__init__(f"form {form_id!r} not found")
        self.form_id = form_id


class InvalidCron(InvalidInput):
    """A cron expression that cron cannot read, or that never fires."""

    code = "invalid_cron"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="cron")


class UnknownTimeZone(InvalidInput):
    """A time zone that is not an IANA zone name (``Europe/Berlin``, ``UTC``)."""

    code = "unknown_timezone"

    def __init__(self, name: str) -> None:
        super().__init__(f"{name[:100]!r} is not a known IANA time zone", field="timezone")


class ScheduleNotFound(ProcessGPTError):
    """No schedule with that id exists for the caller's tenant."""

    code = "schedule_not_found"

    def __init__(self, schedule_id: object) -> None:
        super().__init__(f"schedule {schedule_id} not found")
        self.schedule_id = schedule_id


class FileNotFound(ProcessGPTError):
    """No file with that id exists for the caller's tenant."""

    code = "file_not_found"

    def __init__(self, file_id: object) -> None:
        super().__init__(f"file {file_id} not found")
        self.file_id = file_id


class FileTooLarge(PayloadTooLarge):
    """An uploaded file is over the deployment's size limit. Nothing was stored."""

    code = "file_too_large"


class UnsupportedMediaType(InvalidInput):
    """A file whose content type is not accepted, or whose bytes contradict the type it was
    declared with. Nothing was stored."""

    code = "unsupported_media_type"


class DocumentNotFound(ProcessGPTError):
    """No document with that id exists for the caller's tenant."""

    code = "document_not_found"

    def __init__(self, document_id: object) -> None:
        super().__init__(f"document {document_id} not found")
        self.document_id = document_id


class LinkInvalid(ProcessGPTError):
    """A signed file link whose signature does not match (tampered, or made with a key the
    deployment does not have)."""

    code = "link_invalid"


class LinkExpired(ProcessGPTError):
    """A signed file link used after its expiry."""

    code = "link_expired"


class StorageUnavailable(ProcessGPTError):
    """The file storage backend did not answer or refused; nothing was changed. Retry."""

    code = "storage_unavailable"


class WebhookNotFound(ProcessGPTError):
    """No webhook endpoint with that id exists for the caller's tenant."""

    code = "webhook_not_found"

    def __init__(self, endpoint_id: object) -> None:
        super().__init__(f"webhook endpoint {endpoint_id} not found")
        self.endpoint_id = endpoint_id


class TooManyWebhooks(ProcessGPTError):
    """The tenant has as many webhook endpoints as it may have."""

    code = "too_many_webhooks"


class NotificationNotFound(ProcessGPTError):
    """No notification with that id exists for the caller's tenant."""

    code = "notification_not_found"

    def __init__(self, notification_id: object) -> None:
        super().__init__(f"notification {notification_id} not found")
        self.notification_id = notification_id


ERROR_STATUS: dict[str, int] = {
    InvalidInput.code: 422,
    UnknownAgent.code: 422,
    PayloadTooLarge.code: 413,
    TaskNotFound.code: 404,
    ProcessNotFound.code: 404,
    Unauthorized.code: 401,
    Forbidden.code: 403,
    DatabaseUnavailable.code: 503,
    TooManyPending.code: 429,
    "malformed_json": 400,
    "not_found": 404,
    "method_not_allowed": 405,
    InvalidTransition.code: 409,
    LeaseLost.code: 409,
    EventBufferFull.code: 503,
    ExecutorReturnedWithoutResult.code: 500,
    RetryLater.code: 503,
    ProcessGPTError.code: 500,
    ChatBusy.code: 409,
    MalformedMessage.code: 400,
    AgentFailed.code: 502,
    AgentCancelled.code: 409,
    AgentProfileNotFound.code: 404,
    McpServerNotFound.code: 404,
    NameTaken.code: 409,
    ApiKeyNotFound.code: 404,
    TenantNotFound.code: 404,
    InvalidConfiguration.code: 500,
    StdioNotAllowed.code: 422,
    UrlNotAllowed.code: 422,
    UnknownMcpCatalogEntry.code: 422,
    SecretsUnavailable.code: 500,
    ConditionError.code: 422,
    ProcessDefinitionInvalid.code: 422,
    ProcessDefinitionNotFound.code: 404,
    FormNotFound.code: 404,
    TooManyMcpServers.code: 409,
    InvalidCron.code: 422,
    UnknownTimeZone.code: 422,
    ScheduleNotFound.code: 404,
    FileNotFound.code: 404,
    DocumentNotFound.code: 404,
    FileTooLarge.code: 413,
    UnsupportedMediaType.code: 415,
    LinkInvalid.code: 403,
    LinkExpired.code: 403,
    StorageUnavailable.code: 503,
    WebhookNotFound.code: 404,
    TooManyWebhooks.code: 409,
    NotificationNotFound.code: 404,
}
"""Stable error code → HTTP status, the one table every transport uses."""


class ContextPreparationError(ProcessGPTError):
    """Preparing a task's context failed (process-gpt-agent-sdk name). ``original`` is the cause;
    ``friendly`` an optional message for people."""

    code = "context_preparation_failed"

    def __init__(self, original: Exception, friendly: str | None = None) -> None:
        super().__init__(f"{type(original).__name__}: {original}")
        self.original = original
        self.friendly = friendly


ERROR_STATUS[ContextPreparationError.code] = 500


class MemoryNotFound(ProcessGPTError):
    """No memory item with that id exists for the caller's tenant."""

    code = "memory_not_found"

    def __init__(self, memory_id: object) -> None:
        super().__init__(f"memory {memory_id} not found")
        self.memory_id = memory_id


ERROR_STATUS[MemoryNotFound.code] = 404


class MemoryStateConflict(InvalidTransition):
    """A memory item is not in a state that allows the change (code ``invalid_state``)."""

    def __init__(self, message: str) -> None:
        ProcessGPTError.__init__(self, message)
        self.task_id = None
        self.status = ""
        self.action = ""
