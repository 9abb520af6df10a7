"""Tables that fit the terminal, and stable tab-separated output when piped.

In a terminal a table drops its least important columns, one at a time, until it fits the
width; columns marked ``keep`` (what identifies a row, and money) are never dropped, and the
caption names what was hidden. Piped (stdout not a terminal) the same rows are written as
tab-separated values with a header line: no width, no wrapping, no colours, so ``cut``,
``awk`` and spreadsheets read them. ``--json`` stays the richest form.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

Cell = Any
"""A cell: a ``str``, a rich ``Text``, or any renderable with a ``tsv`` fallback."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column. ``drop``: higher is dropped first (0 with ``keep`` never); ``width``: the
    fixed width of a column of renderables (a progress bar) that cannot be measured as text."""

    name: str
    keep: bool = False
    drop: int = 0
    justify: Literal["left", "right"] = "left"
    fold: bool = False
    width: int | None = None
    footer: str = ""


@dataclass(frozen=True, slots=True)
class Shown:
    """A cell shown one way in a terminal (``rich``) and another when piped (``plain``)."""

    rich: RenderableType
    plain: str


def plain(cell: Cell) -> str:
    """A cell as one line of text (tabs and newlines become spaces)."""
    found = cell.plain if isinstance(cell, Shown) else getattr(cell, "plain", None)
    text = found if isinstance(found, str) else str(cell)
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def piped() -> bool:
    return not sys.stdout.isatty()


def write_tsv(columns: Sequence[Column], rows: Sequence[Sequence[Cell]],
              footer: bool = False) -> None:
    """Header, one line per row, and the footer row when there is one."""
    lines = ["\t".join(c.name for c in columns)]
    lines.extend("\t".join(plain(cell) for cell in row) for row in rows)
    if footer:
        lines.append("\t".join(c.footer for c in columns))
    sys.stdout.write("\n".join(lines) + "\n")


def _on_screen(cell: Cell) -> Cell:
    return cell.rich if isinstance(cell, Shown) else cell


def natural_width(column: Column, rows: Sequence[Sequence[Cell]], index: int) -> int:
    from rich.cells import cell_len

    if column.width is not None:
        return max(column.width, cell_len(column.name))
    widest = max((cell_len(plain(_on_screen(row[index]))) for row in rows), default=0)
    return max(widest, cell_len(column.name), cell_len(column.footer))


def fitting(columns: Sequence[Column], rows: Sequence[Sequence[Cell]],
            width: int) -> list[int]:
    """Indexes of the columns kept so the table's natural width fits ``width``."""
    widths = [natural_width(c, rows, i) for i, c in enumerate(columns)]
    kept = list(range(len(columns)))
    # Box borders and one space of padding each side: 3 characters a column, plus one.
    while sum(widths[i] + 3 for i in kept) + 1 > width:
        droppable = [i for i in kept if not columns[i].keep]
        if not droppable:
            break
        kept.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    return kept


def table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], *, title: str,
          caption: str = "", footer: bool = False, width: int) -> Any:
    """A rich table of the columns that fit ``width``; the caption names hidden ones."""
    from rich.table import Table

    kept = fitting(columns, rows, width)
    hidden = [c.name for i, c in enumerate(columns) if i not in kept]
    notes = [caption] if caption else []
    if hidden:
        notes.append(f"hidden to fit {width} columns: {', '.join(hidden)} "
                     "(widen the terminal, or pipe/--json for every column)")
    out = Table(title=title, title_justify="left", show_footer=footer,
                caption="\n".join(notes) or None, caption_justify="left")
    for i in kept:
        column = columns[i]
        out.add_column(column.name, justify=column.justify, footer=column.footer,
                       no_wrap=not column.fold,
                       overflow="fold" if column.fold else "ellipsis",
                       min_width=min(natural_width(column, rows, i), 12) if column.keep else None)
    for row in rows:
        out.add_row(*(_on_screen(row[i]) for i in kept))
    return out


def show(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], *, title: str,
         caption: str = "", footer: bool = False, out: Console | None = None) -> None:
    """Print the rows: a fitted table in a terminal, TSV when piped (caption on stderr)."""
    from opencell.cli._common import console

    if piped() and out is None:
        write_tsv(columns, rows, footer)
        sys.stdout.flush()
        if caption:
            console(stderr=True).print(caption, markup=False, soft_wrap=True)
        return
    target = out or console()
    target.print(table(columns, rows, title=title, caption=caption, footer=footer,
                       width=target.width))
