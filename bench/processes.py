"""CPU seconds of the processes a benchmark run loads: TTMS's own (from the launcher's pid
files, with their children), RabbitMQ and MariaDB (the servers listening on the ports TTMS
uses: a shared machine may run other brokers and database servers, and ``rabbitmqctl`` is a
``beam.smp`` too)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _named(executable: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(f"/proc/{entry.name}/comm").read_text().strip() == executable:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _listening(port: int) -> list[int]:
    """The processes with a socket listening on ``port`` (TCP, IPv4 or IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and inodes:
            try:
                if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def watched_processes(run_dir: Path | None = None) -> dict[str, list[int]]:
    run_dir = run_dir or Path(os.environ.get("TTMS_RUN_DIR", ROOT / "run"))
    tree = _children()
    watched: dict[str, list[int]] = {}
    for pid_file in sorted(run_dir.glob("*.pid")):
        pid = int(pid_file.read_text().strip() or 0)
        family, todo = [], [pid]
        while todo:
            current = todo.pop()
            family.append(current)
            todo.extend(tree.get(current, []))
        watched[pid_file.stem] = family
    amqp_port = urlsplit(os.environ.get("TTMS_AMQP_URL", "amqp://127.0.0.1:5672/")).port
    watched["rabbitmq"] = _listening(amqp_port or 5672) or _named("beam.smp")
    watched["mariadb"] = (_listening(int(os.environ.get("TTMS_DB_PORT", 3306)))
                          or _named("mariadbd"))
    return watched


def cpu_seconds(processes: dict[str, list[int]]) -> dict[str, float]:
    totals = {}
    for name, pids in processes.items():
        ticks = 0
        for pid in pids:
            fields = _stat(pid)
            if fields:
                ticks += int(fields[11]) + int(fields[12])  # utime + stime
        totals[name] = ticks / TICKS
    return totals
