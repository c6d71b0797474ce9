"""The dashboard's static files (plain HTML, CSS and ES modules: nothing to build), served by
service/routes/dashboard.py at /dashboard and inlined by rapport.report into reports."""

from __future__ import annotations

from importlib.resources import files

FILES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "session.js": "text/javascript; charset=utf-8",
}
"""Every file served, with its media type; nothing else under the folder is reachable."""


def read(name: str) -> str:
    if name not in FILES:
        raise KeyError(name)
    return files(__package__).joinpath("static", name).read_text(encoding="utf-8")
