"""The web console (one static page that talks to the authenticated API; the key stays in the
browser) and the interactive API docs, served without any CDN."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse

router = APIRouter(include_in_schema=False)

_PAGE = (resources.files("processgpt.api") / "static" / "console.html").read_text("utf-8")
DOCS_ASSETS = "/docs-assets"
"""Where the Swagger UI files are served from (the ``fastapi-offline`` package's copy)."""


def docs_assets_dir() -> str:
    return str(resources.files("fastapi_offline") / "static")


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/console")


@router.get("/console")
async def console() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers={"cache-control": "no-cache"})


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI; "Authorize" takes an API key as a bearer token or an `X-API-Key`."""
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title="processgpt API",
        swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
        swagger_ui_parameters={"persistAuthorization": True},
    )
