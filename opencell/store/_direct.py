"""A write batch's statements sent straight to the driver (PostgreSQL inside its pipeline).

Through SQLAlchemy each ``execute`` costs 50-100 µs of Python before the driver sees it
(parameters processed, a result object set up), several times the loopback round trip a
pipeline already saves; a turn's batch runs about ten of them. Its ``executemany`` also
builds each row's parameters in Python (about 2 µs a row on SQLite, where a batch's search
terms and activity rollups are several rows per event). The store's write statements are
built once and bind only numbers, text and booleans, so each is compiled once and its rows
go to the driver's ``executemany`` with only the conversions their types ask for (booleans):
as dictionaries for psycopg's named style, as tuples in the statement's order for sqlite3's
``?``. A statement SQLAlchemy would have to expand, rename parameters for or compute
Python-side defaults for still goes through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect as SQLDialect
from sqlalchemy.sql.base import Executable

_MOST = 256

Run = Callable[[Executable, Sequence[Mapping[str, Any]]], object]
"""Runs one statement for each of the rows (which are never empty)."""


def through_sqlalchemy(conn: Connection) -> Run:
    """The plain way: ``conn.execute(statement, rows)``."""
    return lambda statement, rows: conn.execute(statement, list(rows))


@dataclass(frozen=True, slots=True)
class _Direct:
    """One statement as the driver takes it: its SQL (None: through SQLAlchemy), the values
    it binds itself, the conversions its parameters' types ask for (booleans), and for a
    positional style the parameters' order."""

    statement: Executable
    sql: str | None
    defaults: dict[str, Any]
    processors: dict[str, Callable[[Any], Any]]
    order: tuple[str, ...] | None = None

    def params(self, rows: Sequence[Mapping[str, Any]]) -> Sequence[Any]:
        order = self.order
        if not self.defaults and not self.processors:
            if order is None:
                return rows
            return [tuple([row[name] for name in order]) for row in rows]
        out: list[Any] = []
        for row in rows:
            values = {**self.defaults, **row}
            for name, process in self.processors.items():
                if name in values:
                    values[name] = process(values[name])
            out.append(values if order is None else tuple([values[name] for name in order]))
        return out


class CompiledStatements:
    """The driver's SQL of long-lived statements, compiled once each."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[int, tuple[str, ...]], _Direct] = {}

    def direct(self, conn: Connection, driver: Any) -> Run:
        """Runs statements on ``driver`` (``conn``'s own connection, in its transaction)."""
        fallback = through_sqlalchemy(conn)

        def run(statement: Executable, rows: Sequence[Mapping[str, Any]]) -> object:
            direct = self._direct(conn.dialect, statement, tuple(rows[0]))
            if direct.sql is None:
                return fallback(statement, rows)
            return driver.cursor().executemany(direct.sql, direct.params(rows))

        return run

    def _direct(self, dialect: SQLDialect, statement: Executable,
                keys: tuple[str, ...]) -> _Direct:
        """``statement`` compiled for rows with ``keys``, as SQLAlchemy compiles it for them
        (an INSERT names only the columns given, so the database's defaults fill the rest).
        Direct only when nothing is left for SQLAlchemy to do at execution: no Python-side
        column default to compute, no parameter to expand or rename."""
        found = self._compiled.get((id(statement), keys))
        if found is not None and found.statement is statement:
            return found
        compiled = statement.compile(  # type: ignore[attr-defined]
            dialect=dialect, column_keys=list(keys))
        processors = {}
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
        positional = dialect.paramstyle == "qmark" and bool(compiled.positiontup)
        plain = (dialect.paramstyle == "pyformat" or positional) \
            and not compiled.escaped_bind_names and not compiled.insert_prefetch \
            and not compiled.update_prefetch and "POSTCOMPILE" not in compiled.string
        defaults = {name: value for name, value in compiled.params.items()
                    if value is not None and not compiled.binds[name].required}
        order = tuple(compiled.positiontup) if positional else None
        found = _Direct(statement, compiled.string if plain else None, defaults, processors,
                        order)
        if len(self._compiled) >= _MOST:  # statements are long-lived; never a leak
            self._compiled.clear()
        self._compiled[(id(statement), keys)] = found
        return found
