"""Chats: a tenant's conversation with one agent, one task per turn.

* A chat is ``(tenant_id, chat_id)``: the same chat id of another tenant is another chat.
* A turn is a user message and the task that answers it. Turns of one chat are serialised by
  a row lock on the chat (:meth:`ChatRepository.start_turn`), so whichever API process or
  transport starts a turn, a chat never runs two replies at once (:class:`ChatBusy`).
* History is derived from the turns and their tasks' event logs (streamed text, the question
  asked, the result), never from what a client happened to receive.
* :class:`ChatClientLocks` keeps "one connected client per chat" across API processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import ValidationError

from processgpt.db.database import TRANSIENT_ERRORS, Database
from processgpt.db.sql import QUERIES
from processgpt.db.tasks import PendingGate, TaskRepository, to_task
from processgpt.domain.errors import (
    ChatBusy,
    InvalidInput,
    ProcessGPTError,
    UnknownAgent,
)
from processgpt.domain.task import (
    AGENT_ORCH_PATTERN,
    MAX_INPUT_BYTES,
    Task,
    TaskStatus,
    TaskSubmission,
)

log = logging.getLogger(__name__)

CHAT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
"""What a chat id may look like; the schema enforces the same pattern."""
DEFAULT_AGENT = "demo"
HISTORY_TURNS = 50
"""Previous turns an agent is shown (the most recent ones)."""
_RUNNING = frozenset({TaskStatus.PENDING, TaskStatus.IN_PROGRESS})


@dataclass(frozen=True)
class Chat:
    tenant_id: str
    id: str
    agent_orch: str


@dataclass(frozen=True)
class Turn:
    """One user message and the task answering it. The turn's events are the task's events
    after ``after_seq``."""

    turn: int
    task_id: uuid.UUID
    after_seq: int
    delivered: bool
    status: TaskStatus | None = None


def _turn(row: asyncpg.Record) -> Turn:
    status = row.get("status")
    return Turn(
        turn=int(row["turn"]),
        task_id=row["task_id"],
        after_seq=int(row["after_seq"]),
        delivered=row["delivered_at"] is not None,
        status=TaskStatus(status) if status is not None else None,
    )


def check_chat_id(chat_id: str) -> str:
    if not CHAT_ID_PATTERN.match(chat_id):
        raise InvalidInput(
            "chat id must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', ':' or '-'",
            field="chat_id",
        )
    return chat_id


def _assistant_text(row: asyncpg.Record) -> str:
    if row["text"]:
        return str(row["text"])
    asked = row["asked"]
    if asked is not None:
        return str(asked.get("text", asked)) if isinstance(asked, dict) else str(asked)
    if row["last_of_task"] and row["status"] == TaskStatus.DONE and row["output"] is not None:
        output = row["output"]
        return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    return ""


def _fit(history: list[dict[str, str]], budget: int) -> list[dict[str, str]]:
    """Drop the oldest messages until the history's JSON fits in ``budget`` bytes."""
    while history and len(json.dumps(history, ensure_ascii=False).encode()) > budget:
        history = history[1:]
    return history


class ChatRepository:
    def __init__(
        self,
        db: Database,
        pending_gate: PendingGate,
        *,
        known_agents: frozenset[str] = frozenset(),
    ) -> None:
        self.db = db
        self.tasks = TaskRepository(db)
        self.known_agents = known_agents
        self.pending_gate = pending_gate

    async def open(self, tenant_id: str, chat_id: str, agent: str | None = None) -> Chat:
        """The chat, created for ``agent`` (default ``demo``) on first use: an orchestrator,
        or one of the tenant's agent profiles (each message then runs the profile, as a task
        naming it does). A chat keeps its agent: naming another one is :class:`InvalidInput`."""
        check_chat_id(chat_id)
        wanted = agent or DEFAULT_AGENT
        if not AGENT_ORCH_PATTERN.match(wanted):
            raise InvalidInput(f"agent {wanted!r} is not a valid agent name", field="agent")
        if wanted not in self.known_agents:
            found = await self.db.fetchrow(QUERIES["resolve_agent"], tenant_id, wanted)
            assert found is not None  # one row, always
            if found["profile_orch"] is None and not found["orch_exists"]:
                raise UnknownAgent(wanted)
        try:
            row = await self.db.fetchrow(QUERIES["open_chat"], tenant_id, chat_id, wanted)
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise InvalidInput(f"tenant {tenant_id!r} does not exist", field="tenant_id") from None
        assert row is not None  # the insert or the existing row
        chat = Chat(row["tenant_id"], row["id"], row["agent_orch"])
        if agent is not None and chat.agent_orch != agent:
            raise InvalidInput(
                f"chat {chat_id!r} talks to agent {chat.agent_orch!r}, not {agent!r}",
                field="agent",
            )
        return chat

    async def latest_turn(self, tenant_id: str, chat_id: str) -> Turn | None:
        row = await self.db.fetchrow(QUERIES["latest_turn"], tenant_id, chat_id)
        return None if row is None else _turn(row)

    async def mark_delivered(self, tenant_id: str, chat_id: str, turn: int) -> None:
        await self.db.execute(QUERIES["mark_turn_delivered"], tenant_id, chat_id, turn)

    async def history(
        self, tenant_id: str, chat_id: str, *, conn: asyncpg.Connection | None = None
    ) -> list[dict[str, str]]:
        """The chat's previous turns as ``[{"role": "user"|"assistant", "text": …}]``."""
        target: Any = conn if conn is not None else self.db
        rows = await target.fetch(QUERIES["chat_history"], tenant_id, chat_id, HISTORY_TURNS)
        out: list[dict[str, str]] = []
        for row in rows:
            out.append({"role": "user", "text": row["user_text"]})
            answer = _assistant_text(row)
            if answer:
                out.append({"role": "assistant", "text": answer})
        return out

    async def start_turn(
        self, chat: Chat, text: str, attachments: list[str] | None = None
    ) -> tuple[Turn, Task]:
        """Start the chat's next turn and return it with its task.

        A new task is submitted with ``input = {"attachments", "chat_id", "history"}``,
        unless the chat's latest task waits for input: then ``text`` answers it and the turn
        continues that task. :class:`ChatBusy` while the latest task is still running."""
        attachments = list(attachments or [])
        # An admission for a new task is held until the transaction has committed (the
        # stack closes after the transaction does).
        async with contextlib.AsyncExitStack() as admission, self.db.transaction() as conn:
            if await conn.fetchrow(QUERIES["lock_chat"], chat.tenant_id, chat.id) is None:
                raise InvalidInput(f"chat {chat.id!r} does not exist", field="chat_id")
            last = await conn.fetchrow(QUERIES["latest_turn"], chat.tenant_id, chat.id)
            status = TaskStatus(last["status"]) if last is not None else None
            if status in _RUNNING:
                raise ChatBusy(f"chat {chat.id!r} is still answering the previous message")
            if last is not None and status is TaskStatus.INPUT_REQUIRED:
                row = await conn.fetchrow(
                    QUERIES["answer_task"], last["task_id"], chat.tenant_id, text
                )
                if row is None:  # cannot happen under the chat's row lock
                    raise ChatBusy(f"chat {chat.id!r} changed meanwhile; send again")
                task = to_task(row)
                after = task.last_seq
            else:
                await admission.enter_async_context(
                    self.pending_gate.admit(chat.tenant_id, conn=conn)
                )
                history = await self.history(chat.tenant_id, chat.id, conn=conn)
                text_budget = len(json.dumps([text, attachments], ensure_ascii=False).encode())
                payload = {
                    "attachments": attachments,
                    "chat_id": chat.id,
                    "history": _fit(history, MAX_INPUT_BYTES - text_budget - 1000),
                }
                try:
                    sub = TaskSubmission(
                        agent_orch=chat.agent_orch, query=text, input=payload, description="chat"
                    )
                except ValidationError as exc:
                    reason = exc.errors()[0].get("msg", "invalid message")
                    raise InvalidInput(f"message refused: {reason}", field="text") from None
                task, _ = await self.tasks.submit(
                    chat.tenant_id, sub, known_agents=self.known_agents, conn=conn
                )
                after = 0
            new = await conn.fetchrow(
                QUERIES["insert_turn"],
                chat.tenant_id,
                chat.id,
                task.id,
                after,
                text,
                attachments,
            )
            await conn.execute(QUERIES["touch_chat"], chat.tenant_id, chat.id)
        assert new is not None
        return _turn(new), task


class ChatLockUnavailable(ProcessGPTError):
    """The lock connection cannot reach the database."""

    code = "not_ready"


class ChatClientLocks:
    """ "One connected client per chat", across API processes.

    Each API process keeps ONE dedicated connection holding a session-level advisory lock per
    chat that has a client here (keyed by tenant and chat id). Postgres releases the locks
    when that connection ends, so a crashed API process frees its chats at once, with no
    lease to expire. Session locks are re-entrant within a session, so the process also keeps
    the set of chats it holds. When the connection is lost, :attr:`lost` of that generation is
    set: the sockets that relied on it must close (their clients reconnect)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._io = asyncio.Lock()
        self._held: set[tuple[str, str]] = set()
        self.lost = asyncio.Event()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self.lost.set()
            self._held.clear()
            self.lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
            except TRANSIENT_ERRORS:
                raise ChatLockUnavailable("the database does not answer") from None
            lost = self.lost
            conn.add_termination_listener(lambda _c: lost.set())
            self._conn = conn
        return self._conn

    async def acquire(self, tenant_id: str, chat_id: str) -> asyncio.Event | None:
        """Take the chat for one client; None when another client (here or in another API
        process) has it. Returns the event that is set if the lock is lost."""
        key = (tenant_id, chat_id)
        async with self._io:
            if key in self._held:
                return None
            conn = await self._connection()
            try:
                ok = await conn.fetchval(QUERIES["try_lock_chat_client"], tenant_id, chat_id)
            except TRANSIENT_ERRORS:
                self.lost.set()
                raise ChatLockUnavailable("the database does not answer") from None
            if not ok:
                return None
            self._held.add(key)
            return self.lost

    async def release(self, tenant_id: str, chat_id: str, lost: asyncio.Event) -> None:
        """Give the chat back (nothing to do if its connection is gone meanwhile)."""
        key = (tenant_id, chat_id)
        async with self._io:
            if lost is not self.lost or key not in self._held:
                return
            self._held.discard(key)
            if self._conn is None or self._conn.is_closed():
                return
            try:
                await self._conn.fetchval(QUERIES["unlock_chat_client"], tenant_id, chat_id)
            except TRANSIENT_ERRORS:
                self.lost.set()
                log.warning("chat lock connection lost while releasing chat")

    async def close(self) -> None:
        async with self._io:
            self.lost.set()
            self._held.clear()
            if self._conn is not None and not self._conn.is_closed():
                await self._conn.close()
            self._conn = None
