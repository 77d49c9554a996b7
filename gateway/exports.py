"""Box-office answers as files (issue 20.5): CSV for every box-office route and an Excel
workbook for a play's report, asked for with ``?format=csv|xlsx`` or an ``Accept`` header.

The same JSON answer the service gives, laid out for accounting: amounts as decimal money with
their currency (``45.00``, ``CNY``), times in UTC with the offset written out
(``2026-12-03T19:30:00+00:00``). Nothing here computes a figure."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from messages import errors

CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA = {"csv": CSV, "xlsx": XLSX}


def money(minor: int | None, exponent: int = 2) -> str:
    """Integer minor units → decimal money, ``4500`` → ``"45.00"``."""
    if minor is None:
        return ""
    sign, minor = ("-", -minor) if minor < 0 else ("", minor)
    whole, part = divmod(minor, 10 ** exponent)
    return f"{sign}{whole}.{part:0{exponent}d}" if exponent else f"{sign}{whole}"


def utc(value: str | None) -> str:
    """An answer's UTC time (``…Z``) with its offset stated: ``…+00:00``."""
    if not value:
        return ""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()


Table = tuple[list[str], list[list[Any]]]  # a header and its rows


@dataclass(frozen=True)
class Exporter:
    name: str                                   # the file's name, without its extension
    tables: Callable[[dict[str, Any], str], dict[str, Table]]  # sheet name → table
    formats: tuple[str, ...] = ("csv",)         # the first table is the CSV
    # What the export gives, for the operation's description in the OpenAPI document.
    described: str = ""

    def wanted(self, asked: str | None, accept: str) -> str | None:
        """The format asked for (``?format`` first, then ``Accept``); None: JSON."""
        if asked is not None:
            asked = getattr(asked, "value", asked)
            return None if asked == "json" else asked
        for fmt in self.formats:
            if MEDIA[fmt] in accept:
                return fmt
        return None

    def respond(self, answer: dict[str, Any], fmt: str, currency: str,
                subject: str) -> web.Response:
        if fmt not in self.formats:
            raise errors.ValidationFailed(f"this answer is not offered as {fmt}", [
                errors.invalid(["query", "format"], "enum",
                               f"one of json, {', '.join(self.formats)}",
                               expected=", ".join(["json", *self.formats]))])
        tables = self.tables(answer, currency)
        filename = f"{self.name}{subject}.{fmt}"
        body = _csv(next(iter(tables.values()))) if fmt == "csv" else _xlsx(tables)
        return web.Response(body=body, headers={
            "Content-Type": MEDIA[fmt] + ("; charset=utf-8" if fmt == "csv" else ""),
            "Content-Disposition": f'attachment; filename="{filename}"'})


def _csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table[0])
    writer.writerows(table[1])
    return out.getvalue().encode()


def _xlsx(tables: dict[str, Table]) -> bytes:
    from openpyxl import Workbook  # only the report needs it
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def cell(value: Any) -> Any:
        # XML has no place for most control characters, which a name may hold: each becomes
        # U+FFFD (openpyxl would refuse the whole workbook).
        return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value) if isinstance(value, str) else value

    book = Workbook()
    book.remove(book.active)
    for title, (header, rows) in tables.items():
        sheet = book.create_sheet(title)
        sheet.append(header)
        for row in rows:
            sheet.append([cell(value) for value in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# -- the box-office answers ----------------------------------------------------------------------

def _report(answer: dict[str, Any], currency: str) -> dict[str, Table]:
    header = ["key", "label", "tickets_sold", "tickets_refunded", "gross", "refunded", "net",
              "currency", "checked_in", "no_show"]
    return {"Box office": (header, [
        [i["key"], i["label"] or "", i["tickets_sold"], i["tickets_refunded"],
         money(i["gross"]), money(i["refunded"]), money(i["net"]), currency,
         i["checked_in"], i["no_show"]]
        for i in answer["items"]])}


def _play(answer: dict[str, Any], currency: str) -> dict[str, Table]:
    shows = (["schedule_id", "starts_at_utc", "studio_id", "sold", "refunded", "net", "currency",
              "occupancy", "checked_in", "no_show"], [
        [s["schedule_id"], utc(s["starts_at"]), s["studio_id"] or "", s["sold"], s["refunded"],
         money(s["net"]), currency, "" if s["occupancy"] is None else s["occupancy"],
         s["checked_in"], "" if s["no_show"] is None else s["no_show"]]
        for s in answer["schedules"]])
    total = (["play_id", "play_name", "tickets_sold", "tickets_refunded", "gross", "refunded",
              "net", "currency"], [[
        answer["play_id"], answer["play_name"] or "", answer["tickets_sold"],
        answer["tickets_refunded"], money(answer["gross"]), money(answer["refunded"]),
        money(answer["net"]), currency]])
    types = (["ticket_type", "tickets_sold", "tickets_refunded", "gross", "refunded", "net",
              "currency"], [
        [t["type"] or "full price", t["tickets_sold"], t["tickets_refunded"], money(t["gross"]),
         money(t["refunded"]), money(t["net"]), currency] for t in answer.get("by_type", [])])
    return {"Shows": shows, "Play": total, "Ticket types": types}


BOX_OFFICE = Exporter(
    "box-office", _report,
    described="`?format=csv` (or `Accept: text/csv`): the lines as CSV, amounts as decimal "
              "money with a currency column; `xlsx` is 422 here.")
PLAY_REPORT = Exporter(
    "box-office-play-", _play, ("csv", "xlsx"),
    described="`?format=csv` (or `Accept: text/csv`): the shows as CSV; `?format=xlsx` (or the "
              "xlsx media type): a workbook with the shows, the play's totals and the ticket "
              "types. Amounts as decimal money with a currency column, times in UTC with the "
              "offset written out.")
