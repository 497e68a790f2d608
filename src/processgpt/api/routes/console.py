"""The web console (a static page and its JavaScript modules, all shipped in the package: no
CDN, no build step) and the interactive API docs. The console talks to the same authenticated
API as every client; the key stays in the browser (see README, "The console")."""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response

router = APIRouter(include_in_schema=False)

_STATIC = resources.files("processgpt.api") / "static"
_PAGE = (_STATIC / "console.html").read_text("utf-8")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_ASSETS: dict[str, tuple[bytes, str]] = {
    entry.name: (entry.read_bytes(), _TYPES[entry.name[entry.name.rfind(".") :]])
    for entry in (_STATIC / "console").iterdir()
    if entry.is_file() and entry.name[entry.name.rfind(".") :] in _TYPES
}
"""The console's files by name, read once: only these are served (no path is ever joined)."""

CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The console's Content-Security-Policy: its own files only, no inline script or style
(elements are styled through the CSSOM, which the policy allows), no framing."""
_HEADERS = {
    "cache-control": "no-cache",
    "content-security-policy": CONSOLE_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
DOCS_ASSETS = "/docs-assets"
"""Where the Swagger UI files are served from (the ``fastapi-offline`` package's copy)."""


def docs_assets_dir() -> str:
    return str(resources.files("fastapi_offline") / "static")


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/console")


@router.get("/console")
async def console() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers=_HEADERS)


@router.get("/console/assets/{name}")
async def console_asset(name: Annotated[str, Path(max_length=100)]) -> Response:
    found = _ASSETS.get(name)
    if found is None:
        raise HTTPException(404, "no such console file")
    body, media_type = found
    return Response(body, media_type=media_type, headers=_HEADERS)


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
