"""The web app (gateway/web/): the page at ``/`` and its files under ``/app/<version>/``.

No build step: the files are served as they are. ``<version>`` is a hash of every file, so an
asset's URL changes whenever any file does; assets are cached for a year (immutable), the page
itself is never cached (it names the current version). Text files are sent gzip-compressed
when the browser accepts it. The app is a client of /api/v1 like any other.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from pathlib import Path

from aiohttp import web

WEB = Path(__file__).resolve().parent / "web"
PREFIX = "/app/"
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
         ".svg": "image/svg+xml", ".json": "application/json", ".txt": "text/plain"}


class Files:
    """Every file of the app read once at start: its bytes, gzipped bytes and type."""

    def __init__(self, root: Path = WEB) -> None:
        self.files: dict[str, tuple[bytes, bytes, str]] = {}
        digest = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            name = path.relative_to(root).as_posix()
            raw = path.read_bytes()
            digest.update(name.encode() + b"\0" + raw)
            kind = TYPES.get(path.suffix) or mimetypes.guess_type(name)[0] \
                or "application/octet-stream"
            self.files[name] = (raw, gzip.compress(raw, 9, mtime=0), kind)
        self.version = digest.hexdigest()[:12]
        page = self.files["index.html"][0].replace(
            b"{{ASSETS}}", f"{PREFIX}{self.version}".encode())
        self.page = (page, gzip.compress(page, 9, mtime=0), "text/html")

    def response(self, request: web.Request, item: tuple[bytes, bytes, str],
                 cache: str) -> web.Response:
        raw, zipped, kind = item
        headers = {"Cache-Control": cache, "Vary": "Accept-Encoding",
                   "X-Content-Type-Options": "nosniff"}
        body = raw
        if "gzip" in request.headers.get("Accept-Encoding", "") and len(zipped) < len(raw):
            body = zipped
            headers["Content-Encoding"] = "gzip"
        charset = "utf-8" if kind.startswith("text/") or kind.endswith(("json", "xml")) else None
        return web.Response(body=body, headers=headers, content_type=kind, charset=charset)


def install(app: web.Application, root: Path = WEB) -> None:
    files = Files(root)

    async def page(request: web.Request) -> web.Response:
        response = files.response(request, files.page, "no-cache")
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'; base-uri 'none'")
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        item = files.files.get(name)
        if item is None or name == "index.html":
            raise web.HTTPNotFound()
        if request.match_info["version"] != files.version:
            # An old page asking for an old version: answer with today's file, uncached.
            return files.response(request, item, "no-cache")
        return files.response(request, item, "public, max-age=31536000, immutable")

    app.router.add_get("/", page)
    app.router.add_get(PREFIX + "{version:[0-9a-f]{12}}/{name:.+}", asset)
