"""`/dashboard`: the dashboard's static files. Not API operations (left out of the OpenAPI
document); no key is needed to load them: the page signs in with the public API itself."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from rapport.service import dashboard
from rapport.service.errors import not_found

router = APIRouter(include_in_schema=False)

HEADERS = {
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # Same origin only: the page talks to this service and nothing else.
    "content-security-policy": "default-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


@router.get("/dashboard")
async def dashboard_root() -> Response:
    return RedirectResponse("/dashboard/", status_code=308)


@router.get("/dashboard/")
async def dashboard_index() -> Response:
    return _file("index.html")


@router.get("/dashboard/{name}")
async def dashboard_file(name: str) -> Response:
    return _file(name)


def _file(name: str) -> Response:
    if name not in dashboard.FILES:
        raise not_found("file", name)
    return Response(dashboard.read(name), media_type=dashboard.FILES[name], headers=HEADERS)
