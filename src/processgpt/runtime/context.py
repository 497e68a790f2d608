"""Context preparation: what an executor gets to know about its task besides the query.

Everything is read for a whole claim batch in one round trip (``load_contexts``), with empty
defaults when something is absent. The keys follow process-gpt-agent-sdk's ``extras``.
"""

from __future__ import annotations

from typing import Any

from processgpt.domain.files import named_file_ids


def build_extras(row: dict[str, Any], loaded: dict[str, Any] | None) -> dict[str, Any]:
    """The ``extras`` of a task's context from its row and what ``load_contexts`` read."""
    loaded = loaded or {}
    people: list[dict[str, Any]] = list(loaded.get("users") or [])
    agents = [p for p in people if p.get("is_agent")]
    users = [p for p in people if not p.get("is_agent")]
    form: dict[str, Any] = loaded.get("form") or {}
    feedback = row.get("feedback")
    return {
        "id": str(row["id"]),
        "proc_inst_id": _str_or_none(row.get("proc_inst_id")),
        "root_proc_inst_id": _str_or_none(row.get("proc_inst_id")),
        "activity_name": row.get("activity_name"),
        "agents": agents,
        "users": users,
        # As stored: the A2A adapter shows executors only what the policy lets them use.
        "tenant_mcp": loaded.get("tenant_mcp") or {},
        # The task's agent profile (``agents`` row) or None; see processgpt.agents.llm.
        "agent_profile": loaded.get("agent_profile"),
        "form_id": form.get("id"),
        "form_fields": form.get("fields_json") or [],
        "form_html": form.get("html") or "",
        "notify_user_emails": ",".join(u["email"] for u in users if u.get("email")),
        "summarized_feedback": feedback if isinstance(feedback, str) else "",
        "feedback": feedback,
        "sources": list(loaded.get("sources") or []),
        "human_response": row.get("human_response"),
        # The ids of the files the task was given (input.files, a chat message's
        # attachments); their metadata and bytes: context.files (processgpt.files.task_files).
        "files": [str(i) for i in named_file_ids(row.get("input"))],
        "attempt": row.get("attempts"),
    }


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
