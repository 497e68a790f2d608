"""The console in real Chromium (Debian's ``chromium``; Python ``playwright`` drives it, no
browser download) against a real ``processgpt api`` and ``processgpt worker --agent demo``
and the test Postgres. One stack and one browser for the package (per pytest-xdist worker);
each test has its own page (browser context), and a test fails if the page threw (an uncaught
error or rejection). Tests share the stack's tenant: each finds its own rows by id or text.

Screenshots go to the test's tmp dir, and also to ``PROCESSGPT_CONSOLE_SHOTS`` when set."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.support import PostgresServer, ProcessGPTProcess, api_url

CHROMIUM = Path(os.environ.get("PROCESSGPT_CHROMIUM", "/usr/bin/chromium"))

TENANT = "acme"
STREAMING = "tests.agents.executors:StreamingExecutor"
DEFINITION: dict[str, Any] = {
    "processDefinitionId": "purchase",
    "processDefinitionName": "Purchase request",
    "roles": [
        {"name": "requester", "default": ""},
        {"name": "manager", "default": "manager@example.com"},
    ],
    "events": [
        {"id": "start", "name": "Requested", "type": "startEvent", "properties": "{}"},
        {"id": "end", "name": "Done", "type": "endEvent", "properties": "{}"},
    ],
    "activities": [
        {
            "id": "request",
            "name": "Describe the purchase",
            "type": "userTask",
            "role": "requester",
            "tool": "formHandler:purchase_form",
            "agentMode": "none",
            "instruction": "What to buy and for how much.",
            "outputData": ["purchase_form.item", "purchase_form.amount", "purchase_form.urgency"],
        },
        {
            "id": "approve",
            "name": "Approve the purchase",
            "type": "userTask",
            "role": "manager",
            "tool": "formHandler:approval_form",
            "agentMode": "none",
            "outputData": ["approval_form.decision"],
        },
        {
            "id": "check",
            "name": "Check the budget",
            "type": "serviceTask",
            "role": "manager",
            "agent": "demo",
            "agentMode": "complete",
            "instruction": "Check the budget.",
        },
    ],
    "gateways": [
        {
            "id": "size",
            "name": "Large?",
            "type": "exclusiveGateway",
            "conditionData": ["purchase_form.amount"],
            "properties": "{}",
        }
    ],
    "sequences": [
        {"id": "f1", "source": "start", "target": "request", "condition": "", "properties": "{}"},
        {"id": "f2", "source": "request", "target": "size", "condition": "", "properties": "{}"},
        {
            "id": "f_large",
            "name": "large",
            "source": "size",
            "target": "approve",
            "condition": "",
            "properties": '{"conditionFunction": "amount > 1000", "priority": 1}',
        },
        {
            "id": "f_small",
            "name": "small",
            "source": "size",
            "target": "check",
            "condition": "",
            "properties": '{"conditionFunction": "amount <= 1000", "priority": 2}',
        },
        {"id": "f3", "source": "approve", "target": "end", "condition": "", "properties": "{}"},
        {"id": "f4", "source": "check", "target": "end", "condition": "", "properties": "{}"},
    ],
}
FORMS = {
    "purchase_form": {
        "fields": [
            {"key": "item", "text": "Item", "type": "text"},
            {"key": "amount", "text": "Amount", "type": "number"},
            {"key": "urgency", "text": "Urgency", "type": "select", "options": ["low", "high"]},
        ]
    },
    "approval_form": {
        "fields": [
            {"key": "decision", "text": "Decision", "type": "select", "options": ["yes", "no"]}
        ]
    },
}


@dataclass
class Stack:
    url: str
    key: str
    db: Database

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )


@pytest.fixture(scope="package")
async def stack(
    pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """A database of its own, a ``processgpt api`` and a demo worker, an admin key, and the
    purchase definition published with its forms."""
    dsn = await pg_server.create_database()
    logs = tmp_path_factory.mktemp("console-stack")
    env = {
        "PROCESSGPT_POLL_INTERVAL": "0.2",
        "PROCESSGPT_SSE_HEARTBEAT": "0.5",
        "PROCESSGPT_FILES_DIR": str(logs / "files"),  # the api's and the workers' storage
    }
    procs = [
        ProcessGPTProcess(
            ["api"], dsn=dsn, log_path=logs / "api.log", env={**env, "PROCESSGPT_API_PORT": "0"}
        ),
        ProcessGPTProcess(
            ["worker", "--agent", "demo", "--concurrency", "8"],
            dsn=dsn,
            log_path=logs / "worker.log",
            env=env,
        ),
        ProcessGPTProcess(  # text, a tool call and its result (tests/agents/executors.py)
            ["worker", "--agent", "streaming", "--concurrency", "2", "--executor", STREAMING],
            dsn=dsn,
            log_path=logs / "streaming-worker.log",
            env=env,
        ),
    ]
    db = await Database.connect(dsn, max_size=4)
    try:
        # Generous: the api loads its embedder at start, slow on a loaded machine.
        await procs[0].wait_for_log("api listening url=", timeout=120)
        url = await api_url(procs[0])
        for worker in procs[1:]:
            await worker.wait_for_log("worker started", timeout=120)
        key = (await ApiKeyRepository(db).create(TENANT, role=Role.ADMIN)).key
        result = Stack(url=url, key=key, db=db)
        async with result.client() as client:
            published = await client.post(
                "/v1/process-definitions",
                json={"id": "purchase", "definition": DEFINITION, "forms": FORMS},
            )
            assert published.status_code == 201, published.text
        yield result
    finally:
        for proc in procs:
            proc.kill()
        await db.close()
        await pg_server.drop_database(dsn)


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/test installs Debian's chromium)")
    playwright_api = pytest.importorskip("playwright.async_api")
    # Assertions wait up to 20 s (not 5): the machine running the suite may be loaded.
    playwright_api.expect.set_options(timeout=20_000)
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Console:
    """A page of the console and what it threw."""

    page: Any
    url: str
    errors: list[str]
    shots: Path

    async def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=False)
        extra = os.environ.get("PROCESSGPT_CONSOLE_SHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path


@pytest.fixture
def viewport() -> dict[str, int]:
    return {"width": 1280, "height": 800}


@pytest.fixture
async def console(
    browser: Any, stack: Stack, tmp_path: Path, viewport: dict[str, int]
) -> AsyncIterator[Console]:
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"{exc.name}: {exc.message}"))
    # The console never uses alert()/confirm(): errors are shown inline.
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    page.on(
        "console",
        lambda msg: (
            errors.append("console: " + msg.text)
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    try:
        yield Console(page=page, url=stack.url, errors=errors, shots=tmp_path)
    finally:
        await context.close()
    assert errors == [], errors


@pytest.fixture
def signed_in_url(stack: Stack) -> Iterator[str]:
    """The link ``processgpt up`` prints: the key in the fragment, read once by the page."""
    yield f"{stack.url}/console#key={stack.key}"
