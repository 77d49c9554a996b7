"""``python -m gateway``: serve the REST API (TTMS_GATEWAY_PROCESSES processes sharing the
port with SO_REUSEPORT)."""

from __future__ import annotations

import os

import uvloop
from aiohttp import web

from gateway.app import create_app
from messages.service import setup_logging
from messages.settings import Settings


def serve(settings: Settings) -> None:
    setup_logging(settings, "gateway")
    uvloop.install()
    web.run_app(create_app(settings), host=settings.gateway_host, port=settings.gateway_port,
                reuse_port=True, access_log=None, print=None)


def main() -> None:
    settings = Settings()
    settings.refuse_unsafe_production()
    for _ in range(settings.gateway_processes - 1):
        if os.fork() == 0:
            break  # a worker: serve like the parent
    serve(settings)


if __name__ == "__main__":
    main()
