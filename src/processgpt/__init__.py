"""processgpt: a Postgres-native runtime that runs AI agents as durable tasks."""

from processgpt.app import AgentServer, ProcessGPT
from processgpt.domain.errors import (
    InvalidInput,
    LeaseLost,
    ProcessGPTError,
    RetryLater,
    TaskNotFound,
    UnknownAgent,
)
from processgpt.domain.events import Event, EventType
from processgpt.domain.task import RetryPolicy, Task, TaskStatus, TaskSubmission
from processgpt.runtime.worker import Worker, WorkerOptions

__all__ = [
    "AgentServer",
    "Event",
    "EventType",
    "InvalidInput",
    "LeaseLost",
    "ProcessGPT",
    "ProcessGPTError",
    "RetryLater",
    "RetryPolicy",
    "Task",
    "TaskNotFound",
    "TaskStatus",
    "TaskSubmission",
    "UnknownAgent",
    "Worker",
    "WorkerOptions",
]
