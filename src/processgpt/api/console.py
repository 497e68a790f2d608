"""The web console: one static page (task list, submit form, live task view) served by the
API. It talks to the same authenticated routes as any client; the key stays in the browser."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse

_PAGE = (resources.files("processgpt.api") / "static" / "console.html").read_text("utf-8")


def install_console(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console")

    @app.get("/console", include_in_schema=False)
    async def console() -> HTMLResponse:
        return HTMLResponse(_PAGE, headers={"cache-control": "no-cache"})
