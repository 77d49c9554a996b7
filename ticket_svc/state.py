"""What one ticket_svc process keeps between commands, built once at start-up
(``Handlers(state=ProcessState)``) and reached as ``app.state``. None of it decides a seat or
a hold: losing it (a restart) costs only work the database then does again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ticket_svc.best import Picks, ShowReads
from ticket_svc.contention import Background, SeatReads, SeatTurns
from ticket_svc.expiry import EndedHolds

if TYPE_CHECKING:
    from messages.delay import Delay
    from messages.service import App


class ProcessState:
    __slots__ = ("background", "ended", "expiry", "picks", "seat_reads", "show_reads", "turns")

    def __init__(self) -> None:
        self.background = Background()           # tasks started and not waited for
        self.turns = SeatTurns()                 # same-seat holds, one at a time
        self.seat_reads = SeatReads(self.background)  # holds' early reads, shared
        self.ended = EndedHolds()                # holds seen paid, cancelled or expired
        self.expiry: Delay | None = None         # the delay queue, once the broker has it
        self.picks = Picks()                     # best-available holds' seats, being claimed
        self.show_reads = ShowReads(self.background)  # best-available picks' reads, shared


def state(app: App) -> ProcessState:
    return app.state
