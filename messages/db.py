"""Database access shared by every service: one engine per process, transactions that carry
their events into the outbox, the outbox and inbox tables every service database has, and the
``Watch`` that answers 503 at once while the server does not answer (frozen, unreachable)."""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncmy
import asyncmy.errors
import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    select,
    text,
)
from sqlalchemy.dialects.mysql import DATETIME, LONGBLOB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from messages import errors
from messages.contracts.base import Envelope, Event, Page, PageQuery, utcnow
from messages.settings import Settings

log = logging.getLogger("ttms.db")

# Naive UTC in the database, microsecond precision; `as_utc` makes it aware again on the way out.
Timestamp = DateTime().with_variant(DATETIME(fsp=6), "mysql")


def as_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def to_db(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


async def load_row(conn: Any, table: Table, row_id: int, what: str, *where: Any,
                   lock: str | None = None) -> Any:
    """The row of ``table`` whose ``id`` is ``row_id`` and that meets ``where``, locked for
    ``"update"`` or ``"share"`` if asked; 404 ``no such <what>`` when there is none. ``conn``:
    a connection or a ``Tx``."""
    query = select(table).where(table.c.id == row_id, *where)
    if lock:
        query = query.with_for_update(read=lock == "share")
    row = (await conn.execute(query)).first()
    if row is None:
        raise errors.NotFound(f"no such {what}")
    return row


def is_deadlock(exc: Exception) -> bool:
    """MariaDB chose this transaction as a deadlock victim, or a lock wait timed out: it was
    rolled back whole, so running it again is safe."""
    orig = getattr(exc, "orig", exc)
    code = orig.args[0] if orig is not None and getattr(orig, "args", None) else None
    return code in (1213, 1205)


async def retry_deadlocks(run: Callable[[], Awaitable[Any]], tries: int = 4,
                          also: tuple[type[Exception], ...] = (),
                          before_retry: Callable[[], None] | None = None) -> Any:
    """The one deadlock retry: ``run`` (one whole transaction) again when MariaDB rolled it
    back as a deadlock victim, or when it raised one of ``also`` (a transaction that found
    its rows changed meanwhile and rolled itself back); ``before_retry`` undoes what the
    rolled-back attempt left in memory. The last failure is raised."""
    for attempt in range(tries):
        try:
            return await run()
        except also:
            if attempt == tries - 1:
                raise
        except DBAPIError as exc:
            if attempt == tries - 1 or not is_deadlock(exc):
                raise
            await asyncio.sleep(0.005 * (attempt + 1))
        if before_retry is not None:
            before_retry()
    raise AssertionError("unreachable")


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox", metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False),
        Column("routing_key", String(100), nullable=False),
        Column("body", LargeBinary().with_variant(LONGBLOB, "mysql"), nullable=False),
        Column("created_at", Timestamp, nullable=False),
        Column("published_at", Timestamp, nullable=True),
        Index("ix_outbox_unpublished", "published_at", "id"),
    )


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox", metadata,
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("handled_at", Timestamp, nullable=False),
    )


class Tx:
    """One database transaction. ``emit`` queues an event that is written to the outbox in
    this same transaction, so the event exists exactly when the change it describes does."""

    __slots__ = ("conn", "events", "_producer")

    def __init__(self, conn: AsyncConnection, producer: str) -> None:
        self.conn = conn
        self.events: list[Envelope] = []
        self._producer = producer

    async def execute(self, statement: Any, params: Any = None):
        return await self.conn.execute(statement, params)

    def emit(self, event: Event) -> Envelope:
        envelope = Envelope.wrap(event, self._producer)
        self.events.append(envelope)
        return envelope


_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


@functools.lru_cache(maxsize=512)
def _pyformat(sql: str) -> str:
    """``text()``'s ``:name`` parameters in the driver's ``%(name)s`` form."""
    return _BIND.sub(r"%(\1)s", sql.replace("%", "%%"))


@functools.lru_cache(maxsize=256)
def _row_type(names: tuple[str, ...]) -> type:
    return collections.namedtuple("Row", names, rename=True)


class PlainResult:
    """What handlers use of a SQLAlchemy result: rowcount, lastrowid, first(), all(),
    scalar(); rows with attribute access."""

    __slots__ = ("rowcount", "lastrowid", "_rows")

    def __init__(self, rowcount: int, lastrowid: int | None, rows: list) -> None:
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self._rows = rows

    def first(self):
        return self._rows[0] if self._rows else None

    def all(self) -> list:
        return self._rows

    def scalar(self):
        return self._rows[0][0] if self._rows else None


class Later:
    """A statement queued by ``PlainTx.later``: its ``rowcount`` once it was sent, and for
    ``PlainTx.read_after_commit`` its rows."""

    __slots__ = ("sql", "rowcount", "rows")

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.rowcount: int | None = None
        self.rows: list[tuple] | None = None


class Sql(str):
    """SQL that ``PlainTx.later`` puts into its statement as it is, where a parameter goes:
    a value the server computes when the statement runs (``PlainTx.json_set``)."""

    __slots__ = ()


class PlainTx(Tx):
    """A ``Tx`` on a plain asyncmy connection, for the hottest transactions: the same
    ``execute(text(...), params)`` and ``emit`` as ``Tx``, at a fraction of SQLAlchemy's CPU
    per statement (PERFORMANCE.md). Takes ``text()`` clauses or SQL strings with ``:name``
    parameters (a tuple expands for ``IN :ids``; a list does not); driver errors arrive as
    SQLAlchemy's, so the callers' error handling is the same for both.

    ``later`` queues a statement whose result is not needed at once; it travels with the
    next ``execute`` (or ``flush``, or the commit) in one multi-statement round trip. On this
    machine a round trip's system calls cost more than the statement's Python.

    ``before_commit`` defers work to the end of the transaction, once for all that asked for
    it: a consumer applying a batch of events reads what the whole batch changed in one
    statement instead of one per event. ``memo`` is scratch space for such handlers, for the
    transaction's life."""

    __slots__ = ("_later", "_before_commit", "memo", "_event_sets", "_after_commit")

    def __init__(self, conn: Any, producer: str) -> None:
        super().__init__(conn, producer)
        self._later: list[Later] = []
        self._before_commit: list[Callable[[], Awaitable[None]]] = []
        self.memo: dict[Any, Any] = {}
        self._event_sets: dict[str, list[tuple[str, str]]] = {}
        self._after_commit: Later | None = None

    def json_set(self, document: str, path: str, expression: str) -> Sql:
        """The JSON text ``document`` with the field at ``path`` set by the server to
        ``expression`` (SQL) where the statement runs: for a figure known only at the commit,
        as a parameter of a ``later`` statement."""
        return Sql(f"JSON_SET({self.conn.literal(document)}, {self.conn.literal(path)}, "
                   f"{expression})")

    def set_in_event(self, envelope: Envelope, path: str, expression: str) -> None:
        """Have the server set the field at ``path`` of an emitted event's outbox body to
        ``expression`` (SQL), as its row is written with the COMMIT."""
        self._event_sets.setdefault(envelope.id, []).append((path, expression))

    def read_after_commit(self, sql: str) -> Later:
        """A read sent right after the COMMIT, in its round trip (of session state such as
        a user variable set by the transaction): its ``rows`` once committed."""
        self._after_commit = Later(sql)
        return self._after_commit

    def before_commit(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` when the transaction's statements are done (``finish``)."""
        self._before_commit.append(work)

    async def finish(self) -> None:
        """Run the work deferred with ``before_commit``, in order, each once. The transaction
        calls it before it commits; a caller may call it earlier, to have that work's
        statements carry what is queued."""
        while self._before_commit:
            await self._before_commit.pop(0)()

    async def execute(self, statement: Any, params: Any = None) -> PlainResult:
        sql = statement.text if hasattr(statement, "text") else str(statement)
        if params:
            sql = _pyformat(sql)
        queued = self._later
        try:
            async with self.conn.cursor() as cursor:
                if queued:
                    await self._send(cursor, cursor.mogrify(sql, params or None))
                else:
                    await cursor.execute(sql, params or None)
                rows = []
                if cursor.description:
                    row = _row_type(tuple(d[0] for d in cursor.description))
                    rows = [row(*r) for r in await cursor.fetchall()]
                return PlainResult(cursor.rowcount, cursor.lastrowid, rows)
        except asyncmy.errors.Error as exc:
            raise _as_sqlalchemy(_script(queued, sql), params, exc) from exc

    def later(self, statement: Any, params: dict[str, Any] | None = None, *,
              rows: list[dict[str, Any]] | None = None) -> Later:
        """Queue a statement, sent with the next ``execute``/``flush``/commit; its errors
        surface there. ``rows``: an ``INSERT … VALUES (:a, :b, …) [ON DUPLICATE KEY UPDATE
        …]`` as one multi-row insert of these rows."""
        sql = statement.text if hasattr(statement, "text") else str(statement)
        literal = self.conn.literal
        if rows is not None:
            values = _INSERT_VALUES.match(_pyformat(sql))
            if values is None:
                raise ValueError(f"not an INSERT … VALUES (…) statement: {sql}")
            prefix, one, suffix = values.groups()
            sql = prefix + ", ".join(
                one % {k: v if isinstance(v, Sql) else literal(v) for k, v in row.items()}
                for row in rows) + suffix
        elif params:
            sql = _pyformat(sql) % {k: v if isinstance(v, Sql) else literal(v)
                                    for k, v in params.items()}
        queued = Later(sql)
        self._later.append(queued)
        return queued

    async def flush(self) -> None:
        """Send what ``later`` queued, now."""
        queued = self._later
        if queued:
            try:
                async with self.conn.cursor() as cursor:
                    await self._send(cursor, None)
            except asyncmy.errors.Error as exc:
                raise _as_sqlalchemy(_script(queued), None, exc) from exc

    async def _send(self, cursor: Any, last: str | None) -> None:
        """The queued statements (and ``last``) in one round trip; the cursor is left on the
        last result."""
        queued, self._later = self._later, []
        await cursor.execute(_script(queued, last))
        for i, q in enumerate(queued):
            q.rowcount = cursor.rowcount
            if i + 1 < len(queued) or last is not None:
                await cursor.nextset()


def _script(queued: list[Later], last: str | None = None) -> str:
    """What a round trip sent, for error messages."""
    return ";\n".join([q.sql for q in queued] + ([last] if last is not None else []))


# An INSERT's parts around its one VALUES tuple of parameters (the driver's executemany uses
# the same split).
_INSERT_VALUES = re.compile(
    r"(\s*(?:INSERT|REPLACE)\b.+\bVALUES?\s*)"
    r"(\(\s*%\(\w+\)s\s*(?:,\s*%\(\w+\)s\s*)*\))"
    r"(\s*(?:ON DUPLICATE.*)?)\Z", re.IGNORECASE | re.DOTALL)


async def _quietly(coro) -> None:
    try:
        await coro
    except Exception:  # noqa: BLE001 - the connection is dropped anyway; the first error counts
        pass


def _as_sqlalchemy(sql: str, params: Any, exc: Exception) -> Exception:
    from sqlalchemy import exc as sa

    kind = {asyncmy.errors.IntegrityError: sa.IntegrityError,
            asyncmy.errors.OperationalError: sa.OperationalError,
            asyncmy.errors.InterfaceError: sa.InterfaceError}.get(type(exc), sa.DBAPIError)
    return kind(sql, params, exc)


OUTBOX_INSERT = ("INSERT INTO outbox (event_id, routing_key, body, created_at) "
                 "VALUES (:event_id, :routing_key, :body, :created_at)")


def _outbox_rows(tx: Tx) -> list[dict[str, Any]]:
    """The outbox rows of the events a transaction emitted (both kinds of transaction)."""
    now = to_db(utcnow())
    return [{"event_id": e.id, "routing_key": e.type,
             "body": orjson.dumps(e.model_dump(mode="json")), "created_at": now}
            for e in tx.events]


def _plain_outbox_rows(tx: PlainTx) -> list[dict[str, Any]]:
    """As ``_outbox_rows``, with the fields ``set_in_event`` asked the server to set."""
    rows = _outbox_rows(tx)
    if tx._event_sets:
        literal = tx.conn.literal
        for row in rows:
            sets = tx._event_sets.get(row["event_id"])
            if sets:
                body = literal(row["body"])
                for path, expression in sets:
                    body = f"JSON_SET({body}, {literal(path)}, {expression})"
                row["body"] = Sql(body)
    return rows


# A database that stops answering without closing its connections (frozen, its host gone, a
# dropped network path) makes every statement wait, each until its command's deadline. The
# watch notices it: when a statement has waited STALL_SECONDS and no other finished meanwhile,
# it probes the server on a fresh connection; a probe unanswered within PROBE_SECONDS means
# the server is not answering. Statements then waiting are cancelled and answered 503, and new
# ones are refused at once, until a probe is answered again (one every PROBE_INTERVAL).
# So a frozen database costs its first requests STALL_SECONDS + PROBE_SECONDS plus a tick,
# and the rest nothing. A slow statement or a lock wait is not taken for a hang: the probe
# (a new connection and SELECT 1) is answered while they wait.
STALL_SECONDS = 1.0
PROBE_SECONDS = 1.0
PROBE_INTERVAL = 0.5
TICK_SECONDS = 0.25


class Watch:
    """Knows whether the database server answers (see STALL_SECONDS). Every statement or
    transaction of ``Database`` runs between ``enter`` and ``leave`` (``with watching()``)."""

    def __init__(self, settings: Settings, name: str) -> None:
        self._settings = settings
        self._name = name
        self.unanswered = False  # a probe went unanswered; refuse until one is answered
        self._ops: dict[int, tuple[float, asyncio.Task | None]] = {}
        self._ids = itertools.count()
        self._answered = time.monotonic()  # when a statement or probe last finished
        self._abandoned: set[asyncio.Task] = set()  # cancelled by the watch
        self._monitor: asyncio.Task | None = None

    def enter(self) -> int:
        if self.unanswered:
            raise errors.ServiceUnavailable("the database is not answering", retry_after=1)
        token = next(self._ids)
        self._ops[token] = (time.monotonic(), asyncio.current_task())
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.ensure_future(self._run())
        return token

    def leave(self, token: int, exc: BaseException | None) -> None:
        """After the work of ``enter``'s token ended (``exc``: how). Raises ServiceUnavailable
        in place of the CancelledError the watch caused."""
        _, task = self._ops.pop(token)
        if task in self._abandoned:
            self._abandoned.discard(task)
            task.uncancel()
            if isinstance(exc, asyncio.CancelledError):
                raise errors.ServiceUnavailable("the database is not answering",
                                                retry_after=1) from None
        elif exc is None or not isinstance(exc, asyncio.CancelledError | errors.ServiceError):
            self._answered = time.monotonic()

    def watching(self) -> _Watching:
        """``with watch.watching():`` around a statement or transaction: ``enter`` before it,
        ``leave`` after it, however it ended."""
        return _Watching(self)

    def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()

    async def _run(self) -> None:
        try:
            while self._ops or self.unanswered:
                await asyncio.sleep(TICK_SECONDS if not self.unanswered else PROBE_INTERVAL)
                if self.unanswered:
                    if await self._probe():
                        self.unanswered = False
                        log.warning("the database answers again")
                    continue
                now = time.monotonic()
                oldest = min(start for start, _ in self._ops.values()) if self._ops else now
                if now - oldest < STALL_SECONDS or now - self._answered < STALL_SECONDS:
                    continue
                if await self._probe():
                    continue
                self.unanswered = True
                waiting = {task for _, task in self._ops.values()
                           if task is not None and not task.done()}
                log.warning("the database is not answering (a statement has waited %.1fs, a "
                            "probe %.1fs): %d waiting answered 503, new ones refused",
                            time.monotonic() - oldest, PROBE_SECONDS, len(waiting))
                for task in waiting - self._abandoned:
                    self._abandoned.add(task)
                    task.cancel()
        finally:
            self._monitor = None

    async def _probe(self) -> bool:
        """SELECT 1 on a connection of its own (the pools' may all be stuck)."""
        s = self._settings
        conn = None
        try:
            async with asyncio.timeout(PROBE_SECONDS):
                conn = await asyncmy.connect(
                    host=s.db_host, port=s.db_port, user=s.db_user,
                    password=s.db_password.get_secret_value(), connect_timeout=PROBE_SECONDS)
                async with conn.cursor() as cursor:
                    await cursor.execute("SELECT 1")
        except asyncmy.errors.MySQLError as exc:
            # An error the server sent (too many connections, access denied) is an answer;
            # client-side codes (2000 and up: cannot connect, connection lost) are not.
            if not (exc.args and isinstance(exc.args[0], int) and exc.args[0] < 2000):
                return False
        except Exception:  # noqa: BLE001 - unanswered or refused: not answering either way
            return False
        finally:
            if conn is not None:
                conn.close()
        self._answered = time.monotonic()
        return True


async def run_on_server(settings: Settings, statements: list[str]) -> None:
    """``statements``, in one transaction, on the database server outside any service's
    database (creating, dropping and swapping databases: migrations, order_svc's replay)."""
    engine = create_async_engine(settings.database_url("user", with_database=False))
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


class _Watching:
    """A plain context manager rather than a generator: it runs around every statement."""

    __slots__ = ("_watch", "_token")

    def __init__(self, watch: Watch) -> None:
        self._watch = watch

    def __enter__(self) -> None:
        self._token = self._watch.enter()

    def __exit__(self, kind: Any, exc: BaseException | None, traceback: Any) -> None:
        self._watch.leave(self._token, exc)


class Database:
    def __init__(self, settings: Settings, service: str) -> None:
        self.service = service
        self.engine: AsyncEngine = create_async_engine(
            settings.database_url(service),
            pool_size=settings.db_pool_size,
            # A steady pool: overflow connections opened and closed under load exhaust the
            # server's max_connections (151 by default) when several services share it.
            max_overflow=settings.db_pool_size // 2,
            pool_recycle=1800,
            pool_timeout=5,
        )
        self.outbox_written = asyncio.Event()  # nudges the relay right after a commit
        self._settings = settings
        self._plain_pool = None
        self._plain_lock = asyncio.Lock()
        self.watch = Watch(settings, service)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        with self.watch.watching():
            async with self.engine.begin() as conn:
                tx = Tx(conn, self.service)
                yield tx
                if tx.events:
                    await conn.execute(text(OUTBOX_INSERT), _outbox_rows(tx))
        if tx.events:
            self.outbox_written.set()

    @asynccontextmanager
    async def plain_transaction(self, *, begin_later: bool = False,
                                read_committed: bool = False) -> AsyncIterator[PlainTx]:
        """Like ``transaction``, on plain asyncmy: see ``PlainTx``. ``begin_later``: BEGIN
        travels with the first statement (``PlainTx.later``), and queued statements with the
        COMMIT: a transaction of one read and some writes is two round trips.
        ``read_committed``: this one transaction runs in READ COMMITTED (no gap locks), for a
        locking scan that must not hold off other transactions' inserts (the outbox relay)."""
        with self.watch.watching():
            pool = self._plain_pool or await self._open_plain_pool()
            async with pool.acquire() as conn:
                tx = PlainTx(conn, self.service)
                try:
                    if read_committed:  # SET TRANSACTION applies to the next transaction only
                        tx.later("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    if begin_later:
                        tx.later("BEGIN")
                    else:
                        await tx.flush()
                        await conn.begin()
                    yield tx
                    await tx.finish()
                    if tx.events:  # the outbox rows travel with the COMMIT: one round trip
                        tx.later(OUTBOX_INSERT, rows=_plain_outbox_rows(tx))
                    if tx._after_commit is not None:
                        tx.later("COMMIT")
                        tx._after_commit.rows = (await tx.execute(tx._after_commit.sql)).all()
                    elif tx._later:
                        tx.later("COMMIT")
                        await tx.flush()
                    else:
                        try:
                            await conn.commit()
                        except asyncmy.errors.Error as exc:
                            # Galera refuses a transaction at COMMIT when it lost certification
                            # (1213, as a deadlock): raised as one, so retry_deadlocks runs it
                            raise _as_sqlalchemy("COMMIT", None, exc) from exc
                except BaseException:
                    await _quietly(conn.rollback())
                    raise
        if tx.events:
            self.outbox_written.set()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        with self.watch.watching():
            async with self.engine.connect() as conn:
                yield conn

    async def fetch(self, sql: str, args: Any = None) -> tuple[tuple, ...]:
        """A read on a hot path, in plain asyncmy: through SQLAlchemy the same one-row query
        costs several times the CPU of the query itself (PERFORMANCE.md). ``%s`` parameters,
        tuples back, autocommit (no transaction is left open)."""
        with self.watch.watching():
            pool = self._plain_pool or await self._open_plain_pool()
            async with pool.acquire() as conn, conn.cursor() as cursor:
                await cursor.execute(sql, args)
                rows = await cursor.fetchall()
        return rows

    async def autocommit(self, sql: Any, args: Any = None) -> int:
        """One write on a hot path that is a transaction by itself, in plain asyncmy (see
        ``fetch``): ``%s`` parameters in a tuple, or ``:name`` ones in a dict (a ``text()``
        clause too, as ``PlainTx`` takes it); its row count back."""
        sql = sql.text if hasattr(sql, "text") else sql
        if isinstance(args, dict):
            sql = _pyformat(sql)
        with self.watch.watching():
            pool = self._plain_pool or await self._open_plain_pool()
            async with pool.acquire() as conn, conn.cursor() as cursor:
                await cursor.execute(sql, args)
                count = cursor.rowcount
        return count

    async def _open_plain_pool(self):
        async with self._plain_lock:
            if self._plain_pool is None:
                s = self._settings
                self._plain_pool = await asyncmy.create_pool(
                    host=s.db_host, port=s.db_port, user=s.db_user,
                    password=s.db_password.get_secret_value(),
                    db=s.database_name(self.service), autocommit=True, minsize=1,
                    maxsize=max(2, s.db_pool_size // 2), pool_recycle=1800)
        return self._plain_pool

    async def row(self, table: Table, row_id: int, what: str, *where: Any) -> Any:
        """``load_row`` in a read of its own: a get command's one lookup."""
        async with self.read() as conn:
            return await load_row(conn, table, row_id, what, *where)

    async def page(self, query: Any, counted: Any, where: list, order_by: list,
                   paging: PageQuery, convert: Callable[[Any], Any]) -> Page:
        """One page of a list answer: ``query`` filtered by ``where`` and ordered, the rows
        converted, with the total of ``counted`` (the table or join the rows come from)."""
        async with self.read() as conn:
            total = (await conn.execute(
                select(func.count()).select_from(counted).where(*where))).scalar()
            rows = (await conn.execute(query.where(*where).order_by(*order_by)
                                       .limit(paging.page_size).offset(paging.offset))).all()
        return Page(items=[convert(r) for r in rows], total=total, page=paging.page,
                    page_size=paging.page_size)

    async def dispose(self) -> None:
        self.watch.stop()
        if self._plain_pool is not None:
            self._plain_pool.close()
            await self._plain_pool.wait_closed()
        await self.engine.dispose()


