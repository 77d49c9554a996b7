"""A local SMTP sink for development and tests: every message it receives is written to a
folder as ``<time>-<n>.eml`` (one file per recipient), where a developer can read it.

    python -m user_svc.mailsink            # what `make up` runs (port TTMS_SMTP_PORT, 8025)
    python -m user_svc.mailsink --list     # what `make mail` prints

Not for production: it accepts anything from anyone on its address (127.0.0.1 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller


class _Keeper:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = itertools.count()

    async def handle_DATA(self, server, session, envelope) -> str:
        for rcpt in envelope.rcpt_tos:
            name = f"{time.time():.6f}-{next(self.count)}.eml"
            data = f"X-Envelope-To: {rcpt}\r\n".encode() + envelope.content
            tmp = self.folder / (name + ".tmp")
            tmp.write_bytes(data)
            tmp.rename(self.folder / name)  # readers never see half a file
        return "250 OK"


class MailSink:
    """An SMTP server on ``host:port`` keeping each message in ``folder``; start/stop it."""

    def __init__(self, folder: Path, port: int, host: str = "127.0.0.1") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.controller = Controller(_Keeper(self.folder), hostname=host, port=port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def messages(self) -> list:
        return [message_from_bytes(p.read_bytes(), policy=policy.default)
                for p in sorted(self.folder.glob("*.eml"))]


def listing(folder: Path) -> str:
    lines = []
    for path in sorted(Path(folder).glob("*.eml")):
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        lines.append(f"{path.name}  to {mail['To']}  {mail['Subject']}")
    return "\n".join(lines) or f"no mail in {folder}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=os.environ.get("TTMS_MAIL_SINK_DIR", "run/mail"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("TTMS_SMTP_PORT", 8025)))
    parser.add_argument("--list", action="store_true", help="list the kept mail and exit")
    args = parser.parse_args()
    if args.list:
        print(listing(Path(args.dir)))
        return
    sink = MailSink(Path(args.dir), args.port, args.host)
    sink.start()
    print(f"mail sink on {args.host}:{args.port}, keeping mail in {args.dir}", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
