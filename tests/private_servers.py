"""A RabbitMQ node and a MariaDB server of a test's own, for tests that freeze (SIGSTOP) or
break them: the shared ones serve everybody's runs and are never touched that way.

Each server runs from the system's binaries in a temporary directory (its data, logs, pid
file, socket, Erlang cookie), listens on a free loopback port, and runs in a process group of
its own, so that ``freeze``/``thaw`` stop and continue exactly its processes and ``stop`` ends
them all and removes the directory. ``start_*`` return None when the binaries are absent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from launcher import port_open

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # not /usr/sbin's wrapper (su)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PrivateServer:
    name: str
    port: int
    process: subprocess.Popen
    directory: Path

    def freeze(self) -> None:
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.directory.rglob("*.log")))

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGCONT)  # a frozen process cannot end
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
            # children that outlived the group's leader (beam under rabbitmq-server's shell)
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(5)
        shutil.rmtree(self.directory, ignore_errors=True)


def _wait_until_up(server: PrivateServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(server.port):
        if server.process.poll() is not None or time.monotonic() > deadline:
            log = server.log()
            server.stop()
            raise RuntimeError(f"the private {server.name} did not start:\n{log}")
        time.sleep(0.2)


def start_rabbitmq(name: str, port: int | None = None) -> PrivateServer | None:
    """A single RabbitMQ node, no plugins, guest/guest on 127.0.0.1:<port> (``port``: the
    one a node stopped before had, to restart a broker under its clients)."""
    if not RABBITMQ_SERVER.exists() or shutil.which("erl") is None:
        return None
    directory = Path(tempfile.mkdtemp(prefix=f"{name}-rabbitmq-"))
    port, dist_port = port or free_port(), free_port()
    (directory / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{port}\n"
                                             "loopback_users = none\n")
    (directory / "enabled_plugins").write_text("[].\n")
    (directory / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's (its node name)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RABBITMQ_", "ERL_"))}
    env.update({
        "HOME": str(directory),  # its own Erlang cookie
        "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
        "RABBITMQ_NODENAME": f"{name}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
        "RABBITMQ_LOG_BASE": str(directory / "log"),
        "RABBITMQ_PID_FILE": str(directory / "pid"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    })
    with open(directory / "server.log", "wb") as out:
        process = subprocess.Popen([str(RABBITMQ_SERVER)], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = PrivateServer("rabbitmq", port, process, directory)
    _wait_until_up(server, 120)
    return server


def start_mariadb(name: str) -> PrivateServer | None:
    """A MariaDB server with a fresh data directory; root without a password on
    127.0.0.1:<port>."""
    mariadbd = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
    install = shutil.which("mariadb-install-db")
    if mariadbd is None or install is None:
        return None
    directory = Path(tempfile.mkdtemp(prefix=f"{name}-mariadb-"))
    port = free_port()
    # --user: mariadbd refuses to run as root unless told to
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run([install, "--no-defaults", f"--datadir={directory / 'data'}", *user,
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, capture_output=True, timeout=120)
    with open(directory / "server.log", "wb") as out:
        process = subprocess.Popen(
            [mariadbd, "--no-defaults", f"--datadir={directory / 'data'}", f"--port={port}",
             "--bind-address=127.0.0.1", f"--socket={directory / 'mysqld.sock'}",
             f"--pid-file={directory / 'mysqld.pid'}", *user, "--skip-log-bin",
             "--innodb-buffer-pool-size=32M", f"--log-error={directory / 'error.log'}"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = PrivateServer("mariadb", port, process, directory)
    _wait_until_up(server, 60)
    return server
