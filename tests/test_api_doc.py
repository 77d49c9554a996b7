"""``docs/API.md`` and the gateway's route table name the same routes with the same callers,
so the reference stays true as routes are added; and nothing in the repository reads outside
it (the reference once lived in a folder beside the clone, which a clone does not have)."""

from __future__ import annotations

import re
from collections import Counter

from gateway.routes import ROUTES, Who
from messages.contracts import door, mail, order, play, studio, ticket, user  # noqa: F401
from messages.contracts.base import COMMANDS, EVENTS
from tests.api_doc import API_MD, WHO, read_contract

# What the "who" column may say for each kind of gateway route. Ownership is checked by the
# service that knows the owner, so for the gateway "owner or clerk+" is "any role".
DOC_WHO = {
    Who.anyone: {"anyone"},
    Who.signed_in: {"any role", "owner or clerk+"},
    Who.clerk: {"clerk"},
    Who.manager: {"manager"},
    Who.admin: {"admin"},
    Who.admin_or_self: {"admin or self"},
}
ROOT = API_MD.parent.parent


def _documented() -> dict[str, str]:
    rows = read_contract(API_MD.read_text())
    twice = [key for key, n in Counter(r.key for r in rows).items() if n > 1]
    assert not twice, f"documented more than once in docs/API.md: {twice}"
    return {r.key: r.who.lower() for r in rows}


def test_every_route_of_the_gateway_is_documented_with_its_callers():
    documented = _documented()
    missing, wrong = [], []
    for route in ROUTES:
        key = f"{route.method} {route.path}"
        if key not in documented:
            missing.append(key)
        elif documented[key] not in DOC_WHO[route.who]:
            wrong.append(f"{key}: docs/API.md says {documented[key]!r}, the gateway "
                         f"{route.who.value!r}")
    assert not missing, f"routes without a row in docs/API.md: {missing}"
    assert not wrong, wrong


def test_every_documented_route_exists():
    declared = {f"{r.method} {r.path}" for r in ROUTES}
    documented = _documented()
    assert set(documented) - declared == set(), "rows of docs/API.md the gateway does not have"
    assert set(documented.values()) <= WHO


def test_nothing_reads_outside_the_repository():
    """Code, scripts, the Makefile and CI read only what is in the repository."""
    skip = {".git", ".venv", "run", "__pycache__", ".pytest_cache", ".ruff_cache"}
    files = sorted(
        str(path.relative_to(ROOT)) for path in ROOT.rglob("*")
        if path.is_file() and not skip & set(path.relative_to(ROOT).parts[:-1])
        and (path.suffix in (".py", ".sh", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".lua")
             or path.name in ("Makefile", "Dockerfile") or path.parts[-2] == ".ci"))
    assert "Makefile" in files and "tests/api_doc.py" in files and ".ci/run" in files
    folder = "sha" + "red"  # spelt in two so that this file does not name what it looks for
    needles = (f"../{folder}", f"/work/{folder}", f'"{folder}" /', f"'{folder}' /",
               f"{folder}/API.md")
    found = [f"{name}: {needle}" for name in files if name != "tests/test_api_doc.py"
             for needle in needles if needle in (ROOT / name).read_text(errors="replace")]
    assert not found, found


def test_every_command_says_what_it_does_and_names_only_real_commands_and_events():
    """A command's docstring is its contract on the bus (README, recipe step 1): who may send
    it, what it answers and refuses, what it publishes. A ``service.verb`` or
    ``aggregate.event`` it names must exist, so a renamed event cannot leave it wrong."""
    # (The test services of tests/ register commands of their own.)
    contracts = {name: command for name, command in COMMANDS.items()
                 if command.__module__.startswith("messages.contracts.")}
    silent = sorted(name for name, command in contracts.items() if not command.__doc__)
    assert not silent, f"commands without a docstring: {silent}"
    unknown = sorted(f"{name}: {named}" for name, command in contracts.items()
                     for named in re.findall(r"``([a-z_]+\.[a-z_]+)``", command.__doc__)
                     if named not in COMMANDS and named not in EVENTS)
    assert not unknown, f"named in a docstring, but no such command or event: {unknown}"
