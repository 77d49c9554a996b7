"""The host's own speed, for comparing runs: a bare aiohttp JSON hello in one process, the
first row of PERFORMANCE.md (41,700 req/s on the machine it was measured on). It shares
nothing with TTMS; ``make bench`` starts it for its ``host`` scenario and stops it after.

``python -m bench.hello PORT``
"""

from __future__ import annotations

import sys

import orjson
import uvloop
from aiohttp import web

BODY = orjson.dumps({"status": "ok"})


async def hello(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_get("/", hello)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
