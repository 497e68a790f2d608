"""The FastAPI application: ``create_app(db, settings)``, the API's composition."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from processgpt.api import errors, openapi
from processgpt.api.credential_watch import WatchCredentials
from processgpt.api.middleware import BodyLimit
from processgpt.api.routes import ROUTERS
from processgpt.api.routes.console import DOCS_ASSETS, docs_assets_dir
from processgpt.api.services import Services
from processgpt.config import FileSettings, McpSettings, Settings
from processgpt.db.database import Database
from processgpt.db.secret_box import SecretBox

MAX_BODY_BYTES = 2_000_000
UPLOAD_PATHS = frozenset({"/v1/files"})
"""POST bodies the body limit leaves to their route (which streams them)."""
CHAT_PATH = "/v1/chat"
"""The AI SDK chat endpoint, whose bodies may carry files as data: URLs."""


def create_app(
    db: Database,
    settings: Settings,
    *,
    mcp: McpSettings | None = None,
    box: SecretBox | None = None,
    local_agents: frozenset[str] = frozenset(),
    files: FileSettings | None = None,
) -> FastAPI:
    """The API bound to ``db``. Its lifespan runs the event hub (one LISTEN connection).
    ``mcp`` and ``box``: the process's MCP settings and secret keys (default: from the
    environment and ``settings.data_dir``). ``local_agents``: the agents a worker in this
    same process serves (``processgpt up``). ``files``: where files are kept (default: from
    the environment)."""
    services = Services.build(
        db, settings, mcp=mcp, box=box, local_agents=local_agents, files=files
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with services.running():
            yield

    app = FastAPI(
        title="processgpt",
        version="0.1.0",
        description=openapi.DESCRIPTION,
        openapi_tags=openapi.TAGS,
        lifespan=lifespan,
        docs_url=None,  # served offline by routes/console.py
        redoc_url=None,
    )
    app.state.services = services
    # Uploads stream past the limit: /v1/files applies the file size limit as it reads. A
    # useChat message may carry one file of the largest size inline, as a base64 data: URL.
    chat_limit = MAX_BODY_BYTES + services.files.max_bytes * 4 // 3 + 4
    app.add_middleware(
        BodyLimit, limit=MAX_BODY_BYTES, exempt=UPLOAD_PATHS, larger={CHAT_PATH: chat_limit}
    )
    app.add_middleware(WatchCredentials, watch=services.watch)
    errors.install(app)
    openapi.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount(DOCS_ASSETS, StaticFiles(directory=docs_assets_dir()), name="docs-assets")
    return app
