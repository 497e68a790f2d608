"""Context preparation and the process-gpt-agent-sdk compatibility names."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any, ClassVar

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue

from processgpt.db.database import Database
from processgpt.db.mcp_servers import seal_entry
from processgpt.db.secret_box import SecretBox, new_key
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskStatus, TaskSubmission
from processgpt_agent_sdk import ProcessGPTAgentServer, ProcessGPTRequestContext
from tests.agents.executors import MinimalExecutor, NoopExecutor
from tests.conftest import StartWorker
from tests.support import wait_until


class CapturingExecutor(NoopExecutor):
    seen: ClassVar[dict[str, dict[str, Any]]] = {}

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert isinstance(context, ProcessGPTRequestContext)
        CapturingExecutor.seen[str(context.task_id)] = {
            **context.get_context_data(),
            "input": context.get_user_input(),
            "context_id": context.context_id,
            "message": context.message,
        }
        await super().execute(context, event_queue)


async def test_context_has_form_people_sources_and_mcp(
    db: Database, start_worker: StartWorker
) -> None:
    proc_inst = uuid.uuid4()
    await db.execute(
        "UPDATE tenants SET mcp = $1 WHERE id = 'default'",
        {"mcpServers": {"search": {"url": "https://mcp.example.com/mcp"}}},
    )
    await db.execute("INSERT INTO proc_def (id, tenant_id, name) VALUES ('p', 'default', 'P')")
    await db.execute(
        "INSERT INTO bpm_proc_inst (proc_inst_id, tenant_id, proc_def_id, "
        "proc_def_version) VALUES ($1, 'default', 'p', 1)",
        proc_inst,
    )
    await db.execute(
        "INSERT INTO proc_inst_source (tenant_id, proc_inst_id, file_name, "
        "file_path) VALUES ('default', $1, 'a.pdf', 'docs/a.pdf')",
        proc_inst,
    )
    await db.execute(
        "INSERT INTO form_def (id, tenant_id, html, fields_json) VALUES "
        "('leave_form', 'default', '<form/>', $1)",
        [{"key": "days"}],
    )
    await db.execute(
        "INSERT INTO users (id, tenant_id, email, username, is_agent) VALUES "
        "('u1', 'default', 'ann@example.com', 'Ann', false), "
        "('a1', 'default', null, 'Helper', true)"
    )
    await start_worker({"cap": CapturingExecutor()})
    task, _ = await TaskRepository(db).submit(
        "default",
        TaskSubmission(
            agent_orch="cap",
            query="approve leave",
            proc_inst_id=proc_inst,
            tool="formHandler:leave_form",
            user_id="ann@example.com, a1",
            activity_name="Review",
        ),
        known_agents=frozenset({"cap"}),
    )
    await wait_until(lambda: str(task.id) in CapturingExecutor.seen)
    seen = CapturingExecutor.seen[str(task.id)]
    extras = seen["extras"]
    assert seen["input"] == "approve leave"
    assert seen["context_id"] == str(proc_inst)
    assert seen["message"].parts[0].text == "approve leave"
    assert seen["row"]["id"] == str(task.id) and seen["row"]["tool"] == "formHandler:leave_form"
    assert extras["form_id"] == "leave_form" and extras["form_fields"] == [{"key": "days"}]
    assert extras["form_html"] == "<form/>"
    assert [u["username"] for u in extras["users"]] == ["Ann"]
    assert [a["username"] for a in extras["agents"]] == ["Helper"]
    assert extras["notify_user_emails"] == "ann@example.com"
    assert extras["tenant_mcp"]["mcpServers"]["search"]["url"] == "https://mcp.example.com/mcp"
    assert [s["file_name"] for s in extras["sources"]] == ["a.pdf"]
    assert extras["activity_name"] == "Review" and extras["human_response"] is None

    # the ProcessGPT rule: a form task's result is stored under the form id
    async def done() -> bool:
        return (await TaskRepository(db).get("default", task.id)).status is TaskStatus.DONE

    await wait_until(done)
    output = await db.fetchval("SELECT output FROM todolist WHERE id = $1", task.id)
    assert output == {"leave_form": {"ok": True}}


async def test_executors_see_only_the_tenant_mcp_servers_the_policy_allows(
    db: Database, start_worker: StartWorker
) -> None:
    box = SecretBox([os.environ["PROCESSGPT_SECRET_KEYS"]])
    url = "https://user:pw-secret@mcp.example.com/mcp/path-token?key=q-secret"
    stored = {
        "web": seal_entry({"url": url, "headers": {"Authorization": "Bearer h-secret"}}, box),
        "loop": {"url": "http://127.0.0.1:9/mcp"},
        "meta": {"url": "http://169.254.169.254/latest/meta-data/"},
        "hosthdr": {"url": "https://mcp.example.com/mcp", "headers": {"Host": "internal"}},
        "cmd": {"command": "/bin/sh", "args": ["-c", "id"], "disabled": True},
        "cmd-on": {"command": "/bin/sh", "args": ["-c", "id"]},
        "cat": seal_entry({"catalog": "github", "env": {"GITHUB_TOKEN": "env-secret"}}, box),
        "off": {"url": "https://off.example/mcp", "enabled": False},
        "unopenable": seal_entry({"url": "https://x.example/mcp"}, SecretBox([new_key()]))
        | {"headers": {"A": SecretBox([new_key()]).seal("other-key")}},
    }
    await db.execute(
        "UPDATE tenants SET mcp = $1 WHERE id = 'default'", {"mcpServers": stored, "x": 1}
    )
    await start_worker({"cap": CapturingExecutor()})
    task, _ = await TaskRepository(db).submit(
        "default", TaskSubmission(agent_orch="cap"), known_agents=frozenset({"cap"})
    )
    await wait_until(lambda: str(task.id) in CapturingExecutor.seen)
    assert CapturingExecutor.seen[str(task.id)]["extras"]["tenant_mcp"] == {
        "mcpServers": {
            "web": {
                "transport": "streamable_http",
                "url": url,
                "headers": {"Authorization": "Bearer h-secret"},
                "tenant_supplied": True,
            }
        }
    }


async def test_context_defaults_when_nothing_is_there(
    db: Database, start_worker: StartWorker
) -> None:
    await start_worker({"cap": CapturingExecutor()})
    task, _ = await TaskRepository(db).submit(
        "default", TaskSubmission(agent_orch="cap"), known_agents=frozenset({"cap"})
    )
    await wait_until(lambda: str(task.id) in CapturingExecutor.seen)
    extras = CapturingExecutor.seen[str(task.id)]["extras"]
    assert extras["users"] == [] and extras["agents"] == [] and extras["sources"] == []
    assert extras["form_fields"] == [] and extras["form_id"] is None
    assert extras["tenant_mcp"] == {}


async def test_process_gpt_agent_server_runs_the_seed_executor(db: Database, db_url: str) -> None:
    server = ProcessGPTAgentServer(
        agent_executor=MinimalExecutor(),
        agent_type="crewai-action",
        database_url=db_url,
        poll_interval=0.2,
    )
    running = asyncio.create_task(server.run())
    repo = TaskRepository(db)
    await wait_until(
        lambda: db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM orchestrators WHERE name = 'crewai-action')"
        )
    )
    task, _ = await repo.submit("default", TaskSubmission(agent_orch="crewai-action", query="hi"))

    async def done() -> bool:
        return (await repo.get("default", task.id)).status is TaskStatus.DONE

    await wait_until(done)
    server.stop()
    await asyncio.wait_for(running, 10)
    assert (await repo.get("default", task.id)).output == {"demo": "hello world", "query": "hi"}


_unused: type[AgentExecutor] = AgentExecutor
