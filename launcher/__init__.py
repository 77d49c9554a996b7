"""Local process manager: runs TTMS on one machine without Docker.

`up` migrates the databases, then starts the five services and the gateway
(`TTMS_SERVICE_PROCESSES` processes of each service, default 1: the second of ticket_svc is
`ticket_svc-2`; the gateway forks its own, `TTMS_GATEWAY_PROCESSES`), each as its own
process group with its log in `<run_dir>/logs/<name>.log` and its pid in `<run_dir>/<name>.pid`,
and returns once the gateway's /readyz answers 200. `down` stops exactly what the pid files name.
`deps` makes sure the local RabbitMQ and MariaDB answer, installing them on Debian if need be.

    python3 -m launcher up|down|status|logs|deps [--run-dir DIR]

Standard library only, and it imports nothing of TTMS: `make` runs `deps` with the system
python3, before the venv exists (tests/test_tools.py checks it). Tooling, like `bench/` and
`chaos/`; it lives beside them.
The test suite imports `up`, `down`, `start_one` and `kill_one` to run its own deployment,
and `port_open` to wait for its private servers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUN_DIR = ROOT / "run"
# Gateway last: it is the one that reports ready, and it needs the services behind it. A copy
# of messages.settings.SERVICES (that module needs the venv); tests/test_compose.py compares.
SERVICES = ("user_svc", "studio_svc", "play_svc", "ticket_svc", "order_svc", "gateway")
# The development SMTP sink (user_svc/mailsink.py: every mail as a .eml file in run/mail), started
# first unless TTMS_SMTP_HOST names a real server.
MAIL_SINK = "user_svc.mailsink"
PROCESSES = (MAIL_SINK, *SERVICES)
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
DEPS_WAIT = 60.0

# Popen objects of the processes this Python process started: polling them reaps zombies, and
# holding them keeps Python from warning that a running subprocess was garbage-collected.
_children: dict[int, subprocess.Popen] = {}


class LaunchError(RuntimeError):
    """TTMS or its broker and database could not be started; the message says why (log tails)."""


# --- processes -------------------------------------------------------------------------------


def up(run_dir: Path, env: dict[str, str] | None = None, timeout: float = 90) -> str:
    """Migrate, start every process and wait until the gateway is ready; return its base URL.

    On any failure everything started here is stopped again and LaunchError is raised.
    """
    run_dir = Path(run_dir)
    running = [name for name in _names(run_dir) if _running_pid(run_dir, name)]
    if running:
        raise LaunchError(f"already running in {run_dir}: {', '.join(running)} (run `down` first)")
    url = gateway_url(env)
    address = urllib.parse.urlsplit(url)
    # Otherwise another deployment's gateway would answer /readyz in place of ours.
    if port_open(address.port, address.hostname):
        raise LaunchError(f"something already listens on {address.netloc}; set TTMS_GATEWAY_PORT")
    deadline = time.monotonic() + timeout
    migrate(run_dir, env, timeout)
    try:
        environment = _environment(env)
        smtp_port = int(environment.get("TTMS_SMTP_PORT") or 8025)
        # A real server configured, or a sink already listening (another `up`): none of ours.
        wanted = SERVICES if environment.get("TTMS_SMTP_HOST") or port_open(smtp_port) \
            else PROCESSES
        copies = int(environment.get("TTMS_SERVICE_PROCESSES") or 1)
        wanted = (*wanted, *(f"{name}-{n}" for name in SERVICES[:-1]
                             for n in range(2, copies + 1)))
        started = {name: start_one(run_dir, name, env) for name in wanted}
        while True:
            for name, proc in started.items():
                if proc.poll() is not None:
                    raise LaunchError(
                        f"{name} exited with code {proc.returncode} during start-up\n"
                        + _tails(run_dir, [name])
                    )
            if _ready(url):
                return url
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"{url}/readyz did not answer 200 within {timeout:.0f}s\n"
                    + _tails(run_dir, SERVICES)
                )
            time.sleep(0.2)
    except BaseException:  # also on Ctrl-C: leave nothing half-started behind
        down(run_dir)
        raise


def migrate(run_dir: Path, env: dict[str, str] | None = None, timeout: float = 90) -> None:
    """Run `python -m migrations upgrade` once, logging to `<run_dir>/logs/migrate.log`."""
    log_path = _log_path(run_dir, "migrate")
    with open(log_path, "ab") as log:
        log.write(f"--- migrate at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
        log.flush()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "migrations", "upgrade"],
                cwd=ROOT, env=_environment(env), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            raise LaunchError(
                f"migration did not finish within {timeout:.0f}s\n" + _tails(run_dir, ["migrate"])
            ) from None
    if done.returncode != 0:
        raise LaunchError(
            f"migration failed with code {done.returncode}\n" + _tails(run_dir, ["migrate"])
        )


def start_one(run_dir: Path, name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `python -m <name>` in its own process group, appending to its log (`name` may be
    a further process of a service: `ticket_svc-2`)."""
    if _module(name) not in PROCESSES:
        raise ValueError(f"unknown process {name!r}; expected one of {', '.join(PROCESSES)}")
    run_dir = Path(run_dir)
    pid = _running_pid(run_dir, name)
    if pid:
        raise LaunchError(f"{name} is already running (pid {pid})")
    with open(_log_path(run_dir, name), "ab") as log:
        log.write(f"--- start {name} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
        log.flush()
        # Own session: Ctrl-C on the launcher does not reach it, and down() can signal the
        # whole group, including anything the process forks.
        proc = subprocess.Popen(
            [sys.executable, "-m", _module(name)],
            cwd=ROOT, env=_environment(env), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    _children[proc.pid] = proc
    _pid_path(run_dir, name).write_text(f"{proc.pid}\n")
    return proc


def kill_one(run_dir: Path, name: str, sig: int = signal.SIGKILL) -> bool:
    """Send `sig` to one process group; return False if it was not running.

    After SIGKILL, SIGTERM or SIGINT, wait (up to STOP_GRACE) until it is gone and drop its pid
    file, so `start_one` can follow at once. Other signals (SIGSTOP, SIGCONT) are only sent.
    """
    run_dir = Path(run_dir)
    pid = _running_pid(run_dir, name)
    if not pid:
        return False
    os.killpg(pid, sig)
    if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        if not _wait_gone({name: pid}, STOP_GRACE):
            raise LaunchError(f"{name} (pid {pid}) still runs {STOP_GRACE:.0f}s after signal {sig}")
        _pid_path(run_dir, name).unlink(missing_ok=True)
    return True


def down(run_dir: Path) -> list[str]:
    """Stop every process the pid files name: SIGTERM, then SIGKILL after STOP_GRACE.

    Returns the names that were running. Safe to call any number of times.
    """
    run_dir = Path(run_dir)
    names = _names(run_dir)
    pids = {name: pid for name in names if (pid := _running_pid(run_dir, name))}
    for pid in pids.values():
        _signal_group(pid, signal.SIGTERM)
    if not _wait_gone(pids, STOP_GRACE):
        for name, pid in pids.items():
            if _is_ours(pid, name):
                _signal_group(pid, signal.SIGKILL)
        _wait_gone(pids, 5)
    for name in names:
        _pid_path(run_dir, name).unlink(missing_ok=True)
    return list(pids)


def status(run_dir: Path) -> dict[str, int | None]:
    """Map each process name to its pid if it is running, else None."""
    return {name: _running_pid(Path(run_dir), name) for name in _names(Path(run_dir))}


def gateway_url(env: dict[str, str] | None = None) -> str:
    env = _environment(env)
    host = env.get("TTMS_GATEWAY_HOST") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # bound to every interface: reach it over loopback
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{env.get('TTMS_GATEWAY_PORT') or 8080}"


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    # Unbuffered, so the last lines before a crash are in the log we show.
    return {"PYTHONUNBUFFERED": "1", **os.environ, **(env or {})}


# Loopback must never go through an HTTP proxy that the environment may configure.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _ready(url: str) -> bool:
    try:
        with _http.open(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):  # HTTPError (e.g. 503) is a URLError
        return False


def _module(name: str) -> str:
    """The module a process runs: `ticket_svc-2` is a second `ticket_svc`."""
    return name.split("-", 1)[0]


def _names(run_dir: Path) -> list[str]:
    """Every process name: the usual ones and the further copies that have pid files."""
    extra = sorted(path.stem for path in Path(run_dir).glob("*-*.pid")
                   if _module(path.stem) in PROCESSES)
    return [*PROCESSES, *extra]


def _pid_path(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / f"{name}.pid"


def _log_path(run_dir: Path, name: str) -> Path:
    logs = Path(run_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"{name}.log"


def _running_pid(run_dir: Path, name: str) -> int | None:
    """The pid from `<name>.pid` if that process is still ours and alive."""
    try:
        pid = int(_pid_path(run_dir, name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _is_ours(pid, name) else None


def _is_ours(pid: int, name: str) -> bool:
    """Is `pid` alive and still the `python -m <name>` we started?

    A stale pid file may name a pid the kernel has since given to someone else's process, and
    we must never signal that; a zombie is not alive either.
    """
    name = _module(name)
    child = _children.get(pid)
    if child is not None and child.args[-1] == name:
        return child.poll() is None  # poll() also reaps it
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False
        try:  # no procfs (macOS): the best we can do is ask whether the pid exists
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    except OSError:
        return False
    return f"\0-m\0{name}\0".encode() in cmdline


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:  # exited in the meantime
        pass


def _wait_gone(pids: dict[str, int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_is_ours(pid, name) for name, pid in pids.items()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _tail(path: Path, lines: int = 50) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))  # logs grow large; 64 KiB holds 50 sane lines
        return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")


def _tails(run_dir: Path, names, lines: int = 50) -> str:
    parts = []
    for name in names:
        path = Path(run_dir) / "logs" / f"{name}.log"
        if path.exists():
            parts.append(f"==> {path} <==\n{_tail(path, lines)}")
    return "\n".join(parts)


# --- local RabbitMQ and MariaDB ----------------------------------------------------------------

MARIADBD = "/usr/sbin/mariadbd"


def ensure_deps() -> None:
    """Make sure RabbitMQ (127.0.0.1:5672) and MariaDB (127.0.0.1:3306) answer.

    Starts whichever is installed but down; on Debian as root installs what is missing.
    """
    rabbit_up, maria_up = port_open(5672), port_open(3306)
    if rabbit_up and maria_up:
        print("deps: RabbitMQ (127.0.0.1:5672) and MariaDB (127.0.0.1:3306) answer")
        return
    missing = []
    if not rabbit_up and not _which("rabbitmq-server"):
        missing.append("rabbitmq-server")
    if not maria_up and not Path(MARIADBD).exists():
        missing.append("mariadb-server")
    if missing:
        _apt_install(missing)
    if not rabbit_up and not port_open(5672):  # the package may have started it already
        print("deps: starting RabbitMQ: rabbitmq-server -detached")
        subprocess.run([_which("rabbitmq-server"), "-detached"], check=True)
        _wait_port("RabbitMQ", 5672, DEPS_WAIT)
    if not maria_up and not port_open(3306):
        _start_mariadb()
    if "mariadb-server" in missing:
        _allow_root_over_tcp()
    print("deps: RabbitMQ (127.0.0.1:5672) and MariaDB (127.0.0.1:3306) answer")


def _start_mariadb() -> None:
    # /run is often a fresh tmpfs (containers): mariadbd needs its socket directory.
    run = Path("/run/mysqld")
    if not run.exists():
        run.mkdir(parents=True)
        shutil.chown(run, "mysql", "mysql")
    start = ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", MARIADBD]
    print(f"deps: starting MariaDB: {' '.join(start)}")
    subprocess.run(start, check=True)
    if _wait_port("MariaDB", 3306, 5, fail=False):
        return
    # Without `user = mysql` in its config, mariadbd refuses to run as root.
    print(f"deps: MariaDB did not answer; retrying: {' '.join(start)} -- --user=mysql")
    subprocess.run([*start, "--", "--user=mysql"], check=True)
    _wait_port("MariaDB", 3306, DEPS_WAIT)


def _apt_install(packages: list[str]) -> None:
    if not (Path("/etc/debian_version").exists() and shutil.which("apt-get") and os.geteuid() == 0):
        raise LaunchError(
            f"deps: {' and '.join(packages)} not installed; install them, or use Docker "
            "(`docker compose up`), or run this as root on Debian to have it done for you"
        )
    print(f"deps: installing {' '.join(packages)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", *packages], check=True, env=env)


def _allow_root_over_tcp() -> None:
    # A fresh Debian MariaDB lets root in only over the unix socket; the services connect over
    # TCP as root with the (dev) empty password, so allow that too. Local development only.
    print("deps: letting MariaDB root log in over TCP with an empty password (dev default)")
    sql = (
        "ALTER USER root@localhost"
        " IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')"
    )
    subprocess.run(["mariadb", "-uroot", "-e", sql], check=True)


def _which(program: str) -> str | None:
    # /usr/sbin is not on every PATH, and that is where Debian puts rabbitmq-server.
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/local/sbin")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``host:port`` (within half a second)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_port(what: str, port: int, timeout: float, fail: bool = True) -> bool:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if time.monotonic() > deadline:
            if fail:
                raise LaunchError(
                    f"deps: {what} did not answer on 127.0.0.1:{port} within {timeout:.0f}s"
                )
            return False
        time.sleep(0.5)
    print(f"deps: {what} answers on 127.0.0.1:{port}")
    return True


# --- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m launcher", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=["up", "down", "status", "logs", "deps"])
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="%(default)s")
    parser.add_argument("--timeout", type=float, default=90, help="up: seconds until ready")
    args = parser.parse_args(argv)

    try:
        run(args.command, args.run_dir, args.timeout)
    except LaunchError as error:
        print(f"launcher: {error}", file=sys.stderr)
        return 1
    return 0


def run(command: str, run_dir: Path, timeout: float) -> None:
    if command == "up":
        url = up(run_dir, timeout=timeout)
        print(f"TTMS is up: {url}  (web app: {url}/, logs in {run_dir / 'logs'}, "
              "stop with `make down`)")
    elif command == "down":
        stopped = down(run_dir)
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    elif command == "status":
        for name, pid in status(run_dir).items():
            print(f"{name:<17} running  pid {pid}" if pid else f"{name:<17} stopped")
    elif command == "logs":
        paths = sorted((run_dir / "logs").glob("*.log"))
        print("\n\n".join(f"==> {path} <==\n{_tail(path)}" for path in paths) or "no logs yet")
    elif command == "deps":
        ensure_deps()

