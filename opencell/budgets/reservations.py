"""Spend tallies and reservations per scope instance and period, all under one lock.

A tally is ``stored`` (what the store held at the last sync) + ``local`` (what this process
settled since) + ``reserved`` (worst cases of calls in flight). Admission is check-and-reserve
in one synchronous step under the lock: a call is admitted only if, for every enforced limit
it falls under, ``spent + reserved + its worst case`` stays within the limit. Calls in flight
have reserved their worst case, so concurrent turns cannot together pass a limit; they can
pass it only by what real costs exceed their estimates.

Syncing (see ``BudgetLedger.sync``) re-reads ``stored`` and subtracts from ``local`` what
was settled before the recorder flush that preceded the read: those calls are in the store
now. Calls settled during the sync may be counted twice until the next one — on the safe side.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from opencell.budgets.limits import CallScope, Limit
from opencell.budgets.periods import Window

TallyKey = tuple[str, str]
"""(scope label, window key), e.g. ``("user:alice", "day:2026-01-31")``."""


@dataclass(slots=True)
class Tally:
    """One scope instance's spend in one period."""

    stored: float = 0.0
    local: float = 0.0
    reserved: float = 0.0
    stored_unpriced: int = 0
    local_unpriced: int = 0

    @property
    def spent(self) -> float:
        return self.stored + self.local

    @property
    def unpriced(self) -> int:
        return self.stored_unpriced + self.local_unpriced


@dataclass(frozen=True, slots=True)
class Hold:
    """One limit as it applies to one call: the limit, its scope instance and window."""

    limit: Limit
    label: str
    window: Window

    @property
    def key(self) -> TallyKey:
        return (self.label, self.window.key)


@dataclass(slots=True, eq=False)
class Reservation:
    """A call's worst case, held against every tally it falls under until settled."""

    call: CallScope
    holds: tuple[Hold, ...]
    amount: float
    ts: float
    keys: tuple[TallyKey, ...] = ()
    done: bool = False
    shared: tuple[str, tuple[TallyKey, ...]] | None = None
    """Its row in the database (``shared.py``): id and the tally keys it holds."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call was not admitted: the first enforced limit it would pass."""

    hold: Hold
    spent: float
    reserved: float
    reason: str
    """``over_budget`` or ``unpriced``."""


@dataclass(slots=True)
class Tallies:
    """Every tally, and the one lock that makes check-and-reserve atomic."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    _tallies: dict[TallyKey, Tally] = field(default_factory=dict)

    def get(self, key: TallyKey) -> Tally:
        """The tally for ``key`` (zero if nothing was spent). Call with the lock held."""
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = Tally()
        return tally

    def peek(self, key: TallyKey) -> Tally | None:
        return self._tallies.get(key)

    def items(self) -> list[tuple[TallyKey, Tally]]:
        with self.lock:
            return list(self._tallies.items())

    def reserve(self, call: CallScope, holds: Iterable[Hold], estimate: float | None, *,
                block_unpriced: bool, ts: float) -> Reservation | Refusal:
        """Admit a call whose worst case is ``estimate`` (None: unpriced) or refuse it."""
        holds = tuple(holds)
        keys = tuple(dict.fromkeys(hold.key for hold in holds))
        with self.lock:
            for hold in holds:
                if not hold.limit.enforce:
                    continue
                tally = self.get(hold.key)
                if estimate is None:
                    if block_unpriced:
                        return Refusal(hold, tally.spent, tally.reserved, "unpriced")
                    continue
                if tally.spent + tally.reserved + estimate > hold.limit.usd:
                    return Refusal(hold, tally.spent, tally.reserved, "over_budget")
            amount = estimate or 0.0
            for key in keys:
                self.get(key).reserved += amount
        return Reservation(call, holds, amount, ts, keys)

    def settle(self, reservation: Reservation, cost: float | None) -> None:
        """Replace the reservation by the real cost (None: the call was unpriced).

        A cost that is negative or not a number never lowers a tally: the call is counted at
        its reservation instead.
        """
        if cost is not None and not 0.0 <= cost < math.inf:
            cost = reservation.amount
        with self.lock:
            for tally in self._unreserve(reservation):
                if cost is None:
                    tally.local_unpriced += 1
                else:
                    tally.local += cost

    def release(self, reservation: Reservation) -> None:
        """Drop the reservation of a call that failed (nothing is known to be billed)."""
        with self.lock:
            self._unreserve(reservation)

    def _unreserve(self, reservation: Reservation) -> list[Tally]:
        """Take the reservation off its tallies once (caller holds the lock); the tallies."""
        if reservation.done:
            return []
        reservation.done = True
        tallies = [self.get(key) for key in reservation.keys]
        for tally in tallies:
            tally.reserved = max(0.0, tally.reserved - reservation.amount)
        return tallies

    # ------------------------------------------------------------ syncing with the store

    def local_snapshot(self) -> dict[TallyKey, tuple[float, int]]:
        """What was settled locally so far (taken just before the recorder flush)."""
        with self.lock:
            return {key: (t.local, t.local_unpriced) for key, t in self._tallies.items()
                    if t.local or t.local_unpriced}

    def apply_sync(self, stored: Mapping[TallyKey, tuple[float, int]],
                   snapshot: Mapping[TallyKey, tuple[float, int]],
                   windows: Iterable[str]) -> None:
        """Take ``stored`` (read after the flush) for the current ``windows``; forget tallies
        of periods that are over (unless a call in flight still holds them)."""
        current = set(windows)
        with self.lock:
            for key in set(self._tallies) | set(stored):
                if key[1] not in current:
                    continue
                tally = self.get(key)
                tally.stored, tally.stored_unpriced = stored.get(key, (0.0, 0))
                flushed, flushed_unpriced = snapshot.get(key, (0.0, 0))
                tally.local = max(0.0, tally.local - flushed)
                tally.local_unpriced = max(0, tally.local_unpriced - flushed_unpriced)
            for key in [k for k, t in self._tallies.items()
                        if k[1] not in current and t.reserved <= 0.0]:
                del self._tallies[key]
