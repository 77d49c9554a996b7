"""A RabbitMQ cluster and a MariaDB Galera cluster on one machine, and TTMS against them.

    python3 -m launcher.cluster up|down|status|env [--no-ttms]

`up` starts, from Debian's packages and on loopback ports only (never 5672 or 3306):

- three RabbitMQ nodes `rabbit-c1@localhost` … `c3` (AMQP 5701-5703, distribution
  25701-25703), clustered at their first boot by classic peer discovery, with one Erlang
  cookie, `pause_minority` (a node cut off from the others stops serving, so its clients move
  to the majority) and a small memory limit;
- three Galera nodes `g1` … `g3` (SQL 3311-3313, group 4571-4573, IST 4581-4583, rsync SST
  4591-4593), `g1` bootstrapping the cluster, 64 MB of buffer pool each;
- HAProxy on 127.0.0.1:3310 in front of Galera: one writer at a time, the others backups, and
  no return to a recovered node (a stick table of one entry), because TTMS's seat decisions
  rely on row locks, which Galera takes on one node only (README, "Running on more than one
  machine");
- TTMS in namespace `ttms_cluster` (gateway on 127.0.0.1:18090): two processes of every
  service and two gateway processes, every process given all three broker addresses.

Everything lives under `.cluster/` (git-ignored), which `up` starts afresh and `down` removes.
`env` prints the TTMS settings for the cluster. Standard library only, like the launcher.
The chaos run and tests/test_cluster.py import `Cluster` to kill, stop and freeze nodes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import launcher

ROOT = launcher.ROOT
DIRECTORY = ROOT / ".cluster"
NODES = (1, 2, 3)
RABBIT_PORT = 5700       # + n: AMQP of rabbit-c<n>
RABBIT_DIST_PORT = 25700  # + n: its Erlang distribution
GALERA_PORT = 3310       # + n: SQL of g<n>; HAProxy itself listens on GALERA_PORT
GCOMM_PORT, IST_PORT, SST_PORT = 4570, 4580, 4590
NAMESPACE = "ttms_cluster"
GATEWAY_PORT = 18090
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")  # not /usr/sbin's wrappers (they su to rabbitmq)
GALERA = Path("/usr/lib/galera/libgalera_smm.so")
COOKIE = "TTMSLOCALCLUSTERCOOKIE"  # loopback-only development cluster


def settings_env(namespace: str = NAMESPACE, gateway_port: int = GATEWAY_PORT) -> dict[str, str]:
    """TTMS's settings for the cluster: every broker node, HAProxy as the database."""
    urls = ",".join(f"amqp://guest:guest@127.0.0.1:{RABBIT_PORT + n}/" for n in NODES)
    return {"TTMS_AMQP_URL": urls, "TTMS_AMQP_REPLICAS": "3",
            "TTMS_DB_HOST": "127.0.0.1", "TTMS_DB_PORT": str(GALERA_PORT),
            "TTMS_NAMESPACE": namespace, "TTMS_GATEWAY_PORT": str(gateway_port),
            "TTMS_SERVICE_PROCESSES": "2", "TTMS_GATEWAY_PROCESSES": "2",
            "TTMS_DB_POOL_SIZE": "5"}


@dataclass
class Node:
    """One server of the cluster, run in a process group of its own."""
    name: str
    port: int
    directory: Path

    @property
    def pid_file(self) -> Path:
        return self.directory / "group.pid"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.killpg(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self, timeout: float = 120) -> None:
        if self.pid():
            raise launcher.LaunchError(f"{self.name} already runs")
        argv, env = self.command()
        with open(self.directory / "console.log", "ab") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        launcher._children[proc.pid] = proc
        self.pid_file.write_text(str(proc.pid))
        self.wait_up(timeout)

    def wait_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not launcher.port_open(self.port):
            if self.pid() is None or time.monotonic() > deadline:
                raise launcher.LaunchError(f"{self.name} did not answer on {self.port}:\n"
                                           + self.log_tail())
            time.sleep(0.3)

    def send(self, sig: int) -> None:
        pid = self.pid()
        if pid:
            os.killpg(pid, sig)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 60) -> float:
        """Signal the group and wait for it to end (SIGKILL after ``grace``); seconds taken."""
        began = time.monotonic()
        pid = self.pid()
        if pid is None:
            return 0.0
        os.killpg(pid, signal.SIGCONT)  # a frozen node cannot end
        os.killpg(pid, sig)
        while self.pid() is not None:
            child = launcher._children.get(pid)
            if child is not None:
                child.poll()
            if time.monotonic() - began > grace:
                os.killpg(pid, signal.SIGKILL)
                grace += 10
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return time.monotonic() - began

    def log_tail(self) -> str:
        logs = sorted(self.directory.rglob("*.log"))
        return "\n".join(f"==> {p} <==\n{launcher._tail(p, 20)}" for p in logs)


class RabbitNode(Node):
    @property
    def nodename(self) -> str:
        return f"rabbit-{self.name}@localhost"

    def environment(self) -> dict[str, str]:
        d = self.directory
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        return {**env, "HOME": str(DIRECTORY / "rabbit-home"),  # the shared Erlang cookie
                "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
                "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
                "RABBITMQ_NODENAME": self.nodename, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.port - RABBIT_PORT + RABBIT_DIST_PORT),
                "RABBITMQ_MNESIA_BASE": str(d / "mnesia"), "RABBITMQ_LOG_BASE": str(d / "log"),
                "RABBITMQ_PID_FILE": str(d / "pid"), "ERL_EPMD_ADDRESS": "127.0.0.1"}

    def prepare(self) -> None:
        self.directory.mkdir(parents=True)
        peers = "\n".join(f"cluster_formation.classic_config.nodes.{n} = rabbit-c{n}@localhost"
                          for n in NODES)
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n"
            "vm_memory_high_watermark.absolute = 384MB\ndisk_free_limit.absolute = 50MB\n"
            "cluster_partition_handling = pause_minority\n"
            f"cluster_formation.peer_discovery_backend = classic_config\n{peers}\n")
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq-env.conf").write_text("")

    def command(self) -> tuple[list[str], dict[str, str]]:
        return [str(RABBITMQ_BIN / "rabbitmq-server")], self.environment()

    def ctl(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.nodename, *args],
                              env=self.environment(), capture_output=True, text=True,
                              timeout=timeout, check=False)
        if done.returncode:
            raise launcher.LaunchError(f"rabbitmqctl {' '.join(args)} on {self.name}: "
                                       f"{done.stderr.strip() or done.stdout.strip()}")
        return done.stdout


class GaleraNode(Node):
    bootstrap = False
    start_position = ""  # where a crashed node's data ends (``recover``)

    @property
    def number(self) -> int:
        return self.port - GALERA_PORT

    def prepare(self) -> None:
        self.directory.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "mysql", "mysql")
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.directory}/data",
                        *_root_user(), "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, capture_output=True, timeout=120)

    def command(self) -> tuple[list[str], dict[str, str]]:
        n, d = self.number, self.directory
        peers = ",".join(f"127.0.0.1:{GCOMM_PORT + m}" for m in NODES)
        provider = (f"gmcast.listen_addr=tcp://127.0.0.1:{GCOMM_PORT + n};"
                    f"ist.recv_addr=127.0.0.1:{IST_PORT + n};gcache.size=64M")
        argv = [shutil.which("mariadbd", path="/usr/sbin:/usr/bin") or "/usr/sbin/mariadbd",
                "--no-defaults", f"--datadir={d}/data", f"--port={self.port}",
                "--bind-address=127.0.0.1", f"--socket={d}/mysqld.sock",
                f"--pid-file={d}/mysqld.pid", f"--log-error={d}/error.log", *_root_user(),
                "--innodb-buffer-pool-size=64M", "--performance-schema=OFF",
                "--max-connections=400", "--binlog-format=ROW",
                "--default-storage-engine=InnoDB", "--innodb-autoinc-lock-mode=2",
                "--wsrep-on=ON", f"--wsrep-provider={GALERA}", "--wsrep-cluster-name=ttms",
                f"--wsrep-cluster-address=gcomm://{peers}", f"--wsrep-node-name={self.name}",
                "--wsrep-node-address=127.0.0.1", f"--wsrep-provider-options={provider}",
                "--wsrep-sst-method=rsync", f"--wsrep-sst-receive-address=127.0.0.1:{SST_PORT + n}",
                "--wsrep-slave-threads=2"]
        if self.bootstrap:
            argv.append("--wsrep-new-cluster")
        if self.start_position:
            argv.append(f"--wsrep-start-position={self.start_position}")
        return argv, dict(os.environ)

    def start(self, timeout: float = 120) -> None:
        self.start_position = self.recover()
        super().start(timeout)

    def recover(self) -> str:
        """After a crash (no position in grastate.dat), the position InnoDB's data ends at,
        as Debian's galera_recovery finds it: with it the node rejoins by IST, from the
        others' write-set cache, instead of a full copy (an rsync SST locks its donor, the
        writer perhaps, for its whole length)."""
        state = self.directory / "data" / "grastate.dat"
        if not state.exists() or "seqno:   -1" not in state.read_text():
            return ""
        log = self.directory / "recover.log"
        argv, env = self.command()
        subprocess.run([*argv, "--wsrep-recover", f"--log-error={log}"], env=env,
                       capture_output=True, timeout=120, check=False)
        found = [line.split("Recovered position:", 1)[1].strip()
                 for line in log.read_text(errors="replace").splitlines()
                 if "Recovered position:" in line] if log.exists() else []
        return found[-1] if found else ""

    def sql(self, statement: str) -> str:
        done = subprocess.run(["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{self.port}",
                               "-uroot", "-N", "-B", "-e", statement],
                              capture_output=True, text=True, timeout=30, check=False)
        if done.returncode:
            raise launcher.LaunchError(f"{self.name}: {done.stderr.strip()}")
        return done.stdout.strip()

    def synced(self) -> bool:
        try:
            return self.sql("SHOW GLOBAL STATUS LIKE 'wsrep_local_state_comment'"
                            ).endswith("Synced")
        except (launcher.LaunchError, subprocess.TimeoutExpired):
            return False

    def wait_synced(self, timeout: float = 180) -> float:
        began = time.monotonic()
        while not self.synced():
            if time.monotonic() - began > timeout or self.pid() is None:
                raise launcher.LaunchError(f"{self.name} not synced:\n{self.log_tail()}")
            time.sleep(0.3)
        return time.monotonic() - began


class Proxy(Node):
    """HAProxy in front of Galera."""

    def prepare(self) -> None:
        self.directory.mkdir(parents=True)
        check = self.directory / "galera-check.sh"
        # A node is a fit writer only when it is Synced (4): one that is joining, donating or
        # cut off from the majority still accepts connections but not work.
        check.write_text(
            "#!/bin/sh\n# $3 $4: the server's address and port\n"
            'mariadb --no-defaults -h"$3" -P"$4" -uhaproxy --connect-timeout=1 -N -B '
            "-e \"SHOW GLOBAL STATUS LIKE 'wsrep_local_state'\" 2>/dev/null "
            "| grep -q '[[:space:]]4$'\n")
        check.chmod(0o755)
        servers = "\n".join(
            f"  server g{n} 127.0.0.1:{GALERA_PORT + n} check" + ("" if n == 1 else " backup")
            for n in NODES)
        (self.directory / "haproxy.cfg").write_text(f"""global
  maxconn 2000
  external-check
  insecure-fork-wanted
  stats socket {self.directory}/haproxy.sock mode 600 level admin

defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  timeout check 2s

# One writer: g1 first, g2 and g3 backups. The stick table (one entry) keeps every connection
# on the server that took over until that one fails in turn: no return to a recovered node,
# so that two nodes never take writes at once.
listen galera
  bind 127.0.0.1:{self.port}
  option external-check
  external-check path "/usr/bin:/bin"
  external-check command {check}
  stick-table type integer size 1
  stick on int(1)
  default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions
{servers}
""")

    def command(self) -> tuple[list[str], dict[str, str]]:
        return [_haproxy(), "-db", "-f", str(self.directory / "haproxy.cfg")], dict(os.environ)

    def writer(self) -> str:
        """The server the stick table names (``g1`` …), or "?"."""
        done = subprocess.run(["socat", "-", f"UNIX-CONNECT:{self.directory}/haproxy.sock"],
                              input="show table galera\n", capture_output=True, text=True,
                              timeout=5, check=False)
        for line in done.stdout.splitlines():
            if "server_id=" in line:
                return f"g{line.split('server_id=')[1].split()[0]}"
        return "?"


def _root_user() -> list[str]:
    # As root, mariadbd runs as Debian's `mysql` user: its rsync state transfer starts an
    # rsync daemon, which as root would drop to `nobody` and be refused the data directory.
    return ["--user=mysql"] if os.geteuid() == 0 else []


def _haproxy() -> str:
    found = shutil.which("haproxy", path="/usr/sbin:/usr/bin:/usr/local/sbin")
    if found is None:
        raise launcher.LaunchError("haproxy is missing: `make cluster-up` installs Debian's "
                                   "haproxy when run as root")
    return found


class Cluster:
    """The nodes under ``.cluster/``; ``up``/``down`` as the module docstring says."""

    def __init__(self, directory: Path = DIRECTORY) -> None:
        self.directory = Path(directory)
        self.rabbits = [RabbitNode(f"c{n}", RABBIT_PORT + n, self.directory / f"rabbit-c{n}")
                        for n in NODES]
        self.galeras = [GaleraNode(f"g{n}", GALERA_PORT + n, self.directory / f"galera-g{n}")
                        for n in NODES]
        self.proxy = Proxy("haproxy", GALERA_PORT, self.directory / "haproxy")
        self.run_dir = self.directory / "run"

    @property
    def nodes(self) -> list[Node]:
        return [*self.rabbits, *self.galeras, self.proxy]

    def start_servers(self) -> None:
        ports = [RABBIT_PORT + n for n in NODES] + [GALERA_PORT + n for n in (0, *NODES)]
        taken = [p for p in ports if launcher.port_open(p)]
        if taken:
            raise launcher.LaunchError(f"ports already in use: {taken} (`make cluster-down`?)")
        shutil.rmtree(self.directory, ignore_errors=True)
        home = self.directory / "rabbit-home"
        home.mkdir(parents=True)
        (home / ".erlang.cookie").write_text(COOKIE)
        (home / ".erlang.cookie").chmod(0o400)
        (self.directory / ".gitignore").write_text("*\n")
        for node in self.nodes:
            node.prepare()
        for node in self.rabbits:  # one after the other: each joins the ones before
            node.start()
            print(f"cluster: RabbitMQ {node.nodename} on 127.0.0.1:{node.port}", flush=True)
        self.galeras[0].bootstrap = True
        self.galeras[0].start()
        self.galeras[0].wait_synced()
        self.galeras[0].bootstrap = False
        self.galeras[0].sql("CREATE USER IF NOT EXISTS haproxy@'%'; "
                            "CREATE USER IF NOT EXISTS haproxy@localhost")
        for node in self.galeras[1:]:
            node.start()
            took = node.wait_synced()
            print(f"cluster: Galera {node.name} synced {took:.1f}s after it listened",
                  flush=True)
        members = self.galeras[0].sql("SHOW GLOBAL STATUS LIKE 'wsrep_cluster_size'")
        running = self.rabbits[0].ctl("eval", "length(rabbit_nodes:all_running()).").strip()
        print(f"cluster: Galera {members.split()[-1]} nodes, RabbitMQ {running} running",
              flush=True)
        self.proxy.start()
        print(f"cluster: HAProxy on 127.0.0.1:{self.proxy.port} (writer g1)", flush=True)

    def up(self, ttms: bool = True) -> str | None:
        try:
            self.start_servers()
            if not ttms:
                return None
            return launcher.up(self.run_dir, settings_env(), timeout=300)
        except BaseException:
            self.down()
            raise

    def down(self) -> list[str]:
        stopped = launcher.down(self.run_dir) if self.run_dir.exists() else []
        for node in self.nodes:
            if node.pid():
                node.stop()
                stopped.append(node.name)
        shutil.rmtree(self.directory, ignore_errors=True)
        return stopped

    def status(self) -> dict[str, int | None]:
        found = {node.name: node.pid() for node in self.nodes}
        if self.run_dir.exists():
            found.update(launcher.status(self.run_dir))
        return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m launcher.cluster",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--no-ttms", action="store_true", help="up: the servers only")
    args = parser.parse_args(argv)
    cluster = Cluster()
    try:
        if args.command == "up":
            url = cluster.up(ttms=not args.no_ttms)
            print(f"cluster: TTMS is up: {url} (logs in {cluster.run_dir / 'logs'}; "
                  "stop with `make cluster-down`)" if url else "cluster: servers up")
        elif args.command == "down":
            stopped = cluster.down()
            print(f"cluster: stopped {', '.join(stopped)}" if stopped else "nothing was running")
        elif args.command == "status":
            for name, pid in cluster.status().items():
                print(f"{name:<17} running  pid {pid}" if pid else f"{name:<17} stopped")
        else:
            for key, value in settings_env().items():
                print(f"{key}={value}")
    except launcher.LaunchError as error:
        print(f"cluster: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
