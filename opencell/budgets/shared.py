"""Budget limits that hold across processes: tallies and reservations in the database.

With one process, tallies live in memory (``reservations.py``): check-and-reserve is a lock,
no database round trip. With several processes on one PostgreSQL store, each process's memory
sees only its own calls in flight, so N processes could together spend about N times a limit
(SCALE-OUT.md D3). Here every enforced limit also has a row in ``budget_tallies`` (scope,
window, spent, reserved), and admission is one transaction of conditional updates, in key
order (no deadlocks)::

    UPDATE budget_tallies SET reserved = reserved + :worst_case
     WHERE scope = :s AND window = :w AND spent + reserved + :worst_case <= :limit

A call is admitted only if every row accepted it; otherwise the transaction rolls back and the
call is refused, exactly as one process would refuse it. Settling moves the reservation into
``spent``; a failed call gives it back. Reservations are rows too (with their instance), so
the janitor gives back those of a process that died (``release_dead``). The periodic sync
raises ``spent`` to what the store's cost rollups say (calls settled before the rows existed,
or by older OpenCells), never lowers it.

So the total spent in a window stays within the limit plus what real costs exceed their
reservations, across all processes. The memory tallies still run alongside (reports, alerts).
If the database cannot be reached, the process falls back to its own memory tallies (logged).
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from opencell.budgets.limits import CallScope
from opencell.budgets.reservations import Hold, Refusal, Reservation, Tallies, TallyKey
from opencell.guard import guard
from opencell.store.tables import budget_reservations, budget_tallies

if TYPE_CHECKING:
    from opencell.store import Store

log = logging.getLogger("opencell.budgets")


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__("refused")
        self.refusal = refusal


@dataclass(slots=True)
class SharedTallies(Tallies):
    """:class:`Tallies` whose enforced limits are also checked in the database."""

    store: Any = None
    known: set[TallyKey] = field(default_factory=set)
    """Tally rows this process knows exist (their insert is skipped)."""

    def reserve(self, call: CallScope, holds: Iterable[Hold], estimate: float | None, *,
                block_unpriced: bool, ts: float) -> Reservation | Refusal:
        result = Tallies.reserve(self, call, holds, estimate, block_unpriced=block_unpriced,
                                 ts=ts)
        if not isinstance(result, Reservation) or result.amount <= 0:
            return result
        enforced: dict[TallyKey, Hold] = {}
        for hold in result.holds:
            if hold.limit.enforce and (hold.key not in enforced
                                       or hold.limit.usd < enforced[hold.key].limit.usd):
                enforced[hold.key] = hold
        if not enforced:
            return result
        refusal: Refusal | None = None
        with guard("budget reservation in the store", logger=log) as shared:
            refusal = self._reserve(result, [enforced[key] for key in sorted(enforced)])
        if shared.failed:
            return result  # the store is failing: this process's own tallies decide
        if refusal is not None:
            Tallies.release(self, result)
            return refusal
        return result

    def _reserve(self, reservation: Reservation, holds: list[Hold]) -> Refusal | None:
        t = budget_tallies.c
        rid = uuid.uuid4().hex
        amount = reservation.amount
        if len(holds) == 1 and holds[0].key in self.known:
            return self._reserve_one(reservation, holds[0], rid)
        try:
            with self.store.writing() as conn:
                for hold in holds:
                    scope, window = hold.key
                    if hold.key not in self.known:
                        conn.execute(self.store.insert_missing(budget_tallies,
                                                               ("scope", "window")),
                                     {"scope": scope, "window": window,
                                      "spent": self._known_spend(hold.key), "reserved": 0.0})
                    taken = conn.execute(budget_tallies.update().where(
                        t.scope == scope, t.window == window,
                        t.spent + t.reserved + amount <= hold.limit.usd,
                    ).values(reserved=t.reserved + amount).returning(t.spent)).first()
                    if taken is None:
                        row = conn.execute(sa.select(t.spent, t.reserved).where(
                            t.scope == scope, t.window == window)).one()
                        raise _Refused(Refusal(hold, float(row.spent), float(row.reserved),
                                               "over_budget"))
                conn.execute(budget_reservations.insert(), {
                    "id": rid, "owner": self.store.owner(), "amount": amount,
                    "tally_keys": json.dumps([list(hold.key) for hold in holds]),
                    "ts": reservation.ts})
        except _Refused as refused:
            return refused.refusal
        self.known.update(hold.key for hold in holds)
        reservation.shared = (rid, tuple(hold.key for hold in holds))
        return None

    def _reserve_one(self, reservation: Reservation, hold: Hold, rid: str) -> Refusal | None:
        """One limit whose row exists (the common case): the conditional update and the
        reservation row in one statement, one round trip (autocommit: the statement is its
        own transaction, so a refused update leaves nothing behind)."""
        scope, window = hold.key
        with self.store.autocommit() as conn:
            taken = conn.execute(_RESERVE_ONE, {
                "scope": scope, "window": window, "amount": reservation.amount,
                "limit": hold.limit.usd, "rid": rid, "owner": self.store.owner(),
                "keys": json.dumps([list(hold.key)]), "ts": reservation.ts}).first()
            if taken is None:
                t = budget_tallies.c
                row = conn.execute(sa.select(t.spent, t.reserved).where(
                    t.scope == scope, t.window == window)).one()
                return Refusal(hold, float(row.spent), float(row.reserved), "over_budget")
        reservation.shared = (rid, (hold.key,))
        return None

    def _known_spend(self, key: TallyKey) -> float:
        with self.lock:
            tally = self.peek(key)
            return 0.0 if tally is None else tally.spent

    def settle(self, reservation: Reservation, cost: float | None) -> None:
        Tallies.settle(self, reservation, cost)
        if reservation.shared is not None:
            spent = reservation.amount if cost is not None and not 0.0 <= cost < math.inf \
                else (cost or 0.0)
            self._give_back(reservation, spent)

    def release(self, reservation: Reservation) -> None:
        Tallies.release(self, reservation)
        if reservation.shared is not None:
            self._give_back(reservation, 0.0)

    def _give_back(self, reservation: Reservation, spent: float) -> None:
        assert reservation.shared is not None
        rid, keys = reservation.shared
        reservation.shared = None
        with guard("budget settle in the store", logger=log):
            if len(keys) == 1:  # one statement, one round trip
                scope, window = keys[0]
                with self.store.autocommit() as conn:
                    conn.execute(_SETTLE_ONE, {"rid": rid, "scope": scope, "window": window,
                                               "amount": reservation.amount, "spent": spent})
                return
            with self.store.writing() as conn:
                if conn.execute(budget_reservations.delete().where(
                        budget_reservations.c.id == rid)).rowcount:
                    _adjust(conn, keys, -reservation.amount, spent)

    def apply_sync(self, stored: Mapping[TallyKey, tuple[float, int]],
                   snapshot: Mapping[TallyKey, tuple[float, int]],
                   windows: Iterable[str]) -> None:
        windows = list(windows)
        Tallies.apply_sync(self, stored, snapshot, windows)
        current = set(windows)
        t = budget_tallies.c
        with guard("budget sync in the store", logger=log):
            rows = [{"s": key[0], "w": key[1], "v": value[0]}
                    for key, value in sorted(stored.items()) if key[1] in current and value[0]]
            if rows:
                with self.store.writing() as conn:
                    conn.execute(budget_tallies.update().where(
                        t.scope == sa.bindparam("s"), t.window == sa.bindparam("w"),
                        t.spent < sa.bindparam("v")).values(spent=sa.bindparam("v")), rows)

    def release_dead(self) -> int:
        """Give back the reservations of processes that are gone; how many."""
        r = budget_reservations.c
        with self.store.reading() as conn:
            owners = [row[0] for row in conn.execute(sa.select(r.owner).distinct())]
        dead = self.store.dead(owners) if owners else set()
        if not dead:
            return 0
        released = 0
        with self.store.writing() as conn:
            for row in conn.execute(sa.select(r.id, r.amount, r.tally_keys).where(
                    r.owner.in_(sorted(dead))).order_by(r.id)).all():
                if conn.execute(budget_reservations.delete().where(r.id == row.id)).rowcount:
                    keys = [(str(key[0]), str(key[1])) for key in json.loads(row.tally_keys)]
                    _adjust(conn, keys, -float(row.amount), 0.0)
                    released += 1
        if released:
            log.info("budget reservations of a stopped process released count=%d", released)
        return released


_RESERVE_ONE = sa.text(
    'WITH taken AS (UPDATE budget_tallies SET reserved = reserved + :amount '
    'WHERE scope = :scope AND "window" = :window '
    'AND spent + reserved + :amount <= :limit RETURNING 1) '
    "INSERT INTO budget_reservations (id, owner, amount, tally_keys, ts) "
    "SELECT :rid, :owner, :amount, :keys, :ts FROM taken RETURNING id")
"""Reserve against one limit: the reservation row exists exactly when the tally took it."""
_SETTLE_ONE = sa.text(
    "WITH gone AS (DELETE FROM budget_reservations WHERE id = :rid RETURNING id) "
    "UPDATE budget_tallies SET reserved = GREATEST(reserved - :amount, 0), "
    'spent = spent + :spent WHERE scope = :scope AND "window" = :window '
    "AND EXISTS (SELECT 1 FROM gone)")
"""Settle a one-limit reservation: moved into ``spent`` only if its row was still there
(the janitor may have given it back already)."""


def _adjust(conn: Any, keys: Iterable[TallyKey], reserved: float, spent: float) -> None:
    t = budget_tallies.c
    for scope, window in sorted(keys):
        conn.execute(budget_tallies.update().where(t.scope == scope, t.window == window)
                     .values(reserved=sa.func.greatest(t.reserved + reserved, 0.0),
                             spent=t.spent + spent))


def tallies_for(store: Store | None) -> Tallies:
    """Shared tallies on PostgreSQL (several processes may share it), memory ones otherwise."""
    if store is not None and store.dialect_name == "postgresql":
        return SharedTallies(store=store)
    return Tallies()
