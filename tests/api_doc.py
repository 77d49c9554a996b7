"""The project's API reference, ``docs/API.md``, read as data: every row of every route table
with a "who" column. The permission matrix (``test_permissions.py``) is generated from it and
``test_api_doc.py`` holds it to the gateway's route table. Nothing outside the repository is
read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

API_MD = Path(__file__).resolve().parent.parent / "docs" / "API.md"
RANK = {"customer": 1, "clerk": 2, "manager": 3, "admin": 4}
# Every kind of caller the "who" column may name.
WHO = {"anyone", "any role", "admin", "admin or self", "manager", "clerk", "owner or clerk+"}


@dataclass(frozen=True)
class Contract:
    method: str
    path: str      # relative to /api/v1, every path parameter written {id} as the gateway does
    who: str
    answer: str

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def alternatives(self) -> list[str]:
        return [w.strip().lower() for w in self.who.split(" or ")]

    @property
    def by_ownership(self) -> bool:
        """Some caller is allowed only as the resource's owner ("owner", "self"), or lists
        their own things unless clerk+ passes ``?user_id=`` (GET /tickets, GET /orders)."""
        return any(a in ("owner", "self") for a in self.alternatives) or self.by_query_owner

    @property
    def by_query_owner(self) -> bool:
        return "clerk+" in self.answer and "user_id" in self.answer

    def allows(self, role: str | None, owner: bool | None) -> bool:
        for alternative in self.alternatives:
            if alternative == "anyone":
                return True
            if role is None:
                continue
            if alternative == "any role" and not self.by_query_owner:
                return True
            if alternative == "any role" and (owner is not False or RANK[role] >= 2):
                return True
            if alternative in ("owner", "self") and owner:
                return True
            minimum = alternative.rstrip("+")
            if minimum in RANK and RANK[role] >= RANK[minimum]:
                return True
        return False


def _cells(line: str) -> list[str]:
    """A markdown table row's cells; ``|`` inside backticks or escaped is not a separator."""
    line = line.strip().replace("\\|", "\x00")
    cells, current, quoted = [], "", False
    for char in line.strip("|"):
        if char == "`":
            quoted = not quoted
        if char == "|" and not quoted:
            cells.append(current.strip())
            current = ""
        else:
            current += char
    cells.append(current.strip())
    return [c.replace("\x00", "|") for c in cells]


def read_contract(text: str) -> list[Contract]:
    contracts, who_at, lines = [], None, text.splitlines()
    for number, line in enumerate(lines):
        if not line.startswith("|"):
            who_at = None
            continue
        cells = _cells(line)
        if number + 1 < len(lines) and re.match(r"^\|\s*-", lines[number + 1]):
            headers = [c.lower() for c in cells]
            who_at = headers.index("who") if "who" in headers else None
            continue
        if who_at is None or re.match(r"^\|\s*-", line):
            continue
        for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s?]*)`", cells[0]):
            contracts.append(Contract(method, re.sub(r"\{[^}]+\}", "{id}", path),
                                      cells[who_at], cells[-1]))
    return contracts

