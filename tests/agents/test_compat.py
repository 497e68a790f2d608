"""``processgpt_agent_sdk.compat``: the names agents of process-gpt-agent-sdk import, and its
README's minimal executor running unchanged but for its imports."""

from __future__ import annotations

import uuid

from examples.sdk_minimal import MinimalExecutor

from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskStatus, TaskSubmission
from tests.conftest import StartWorker
from tests.support import wait_until

SEED_NAMES = {
    # a2a-sdk 0.3 names their executors import
    "AgentExecutor",
    "RequestContext",
    "EventQueue",
    "TaskStatusUpdateEvent",
    "TaskArtifactUpdateEvent",
    "TaskState",
    "TaskStatus",
    "Message",
    "Part",
    "TextPart",
    "DataPart",
    "Artifact",
    "Role",
    "Task",
    "new_agent_text_message",
    "new_text_artifact",
    "new_task",
    # process-gpt-agent-sdk's own
    "ProcessGPTAgentServer",
    "ProcessGPTRequestContext",
    "ProcessGPTEventQueue",
    "ContextPreparationError",
}


def test_every_compat_name_imports() -> None:
    from processgpt_agent_sdk import compat  # noqa: PLC0415

    assert set(compat.__all__) >= SEED_NAMES
    namespace: dict[str, object] = {}
    exec("from processgpt_agent_sdk.compat import *", namespace)
    missing = [name for name in compat.__all__ if namespace.get(name) is None]
    assert not missing
    assert compat.TaskState.working.value == "working"  # 0.3 names, not TASK_STATE_WORKING
    message = compat.new_agent_text_message("hi", None, "t-1")
    assert compat.get_message_text(message) == "hi"
    assert compat.new_task(message).id == "t-1"


async def test_the_seed_readme_executor_runs_a_task_outside_a_process(
    db: Database, start_worker: StartWorker
) -> None:
    """Its events name ``row["proc_inst_id"]`` as their context id, which a task outside a
    process does not have: the task id stands in, as it does for the runtime."""
    await start_worker({"crewai-action": MinimalExecutor()})
    repo = TaskRepository(db)
    task, _ = await repo.submit(
        "default",
        TaskSubmission(agent_orch="crewai-action", query="hello"),
        known_agents=frozenset({"crewai-action"}),
    )
    assert task.proc_inst_id is None

    async def done() -> bool:
        return (await repo.get("default", task.id)).status == TaskStatus.DONE

    await wait_until(done)
    finished = await repo.get("default", task.id)
    assert finished.output == {"demo": "hello world"}
    events = await repo.events("default", task.id)
    started = [e for e in events if e.event_type == "task_started"]
    assert len(started) == 1 and started[0].data == {"demo": "hello world"}
    assert started[0].crew_type == "action"
    assert isinstance(task.id, uuid.UUID)
