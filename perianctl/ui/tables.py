"""Tables people copy from: ids are never cut, the other columns give way; piped tables are plain text.

On a terminal a table is fitted to the screen width in two steps:

1. columns that may give way shrink (with ``…``) down to a floor, the least useful first;
2. if that is not enough, they disappear, in the same order.

Columns in ``keep`` (the job id and its status) never shrink and never disappear: an id cut to
``d9a33289-e29f-…`` cannot be pasted into ``perianctl delete``. When even those do not fit, the table
is printed wider than the screen (the terminal wraps it) rather than cut.

Off a terminal (a pipe, a file, CI logs) every cell is printed whole, columns are separated by
spaces, and no line ends in padding: ``awk``, ``cut`` and ``grep`` see exactly what the API sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from perianctl.text import one_line

if TYPE_CHECKING:
    from rich.console import Console

GAP = 3
"""Cells between two columns of a ``SIMPLE_HEAD`` table without edges (rich: pad, rule, pad)."""
PLAIN_GAP = 2
"""Spaces between two columns of a piped table."""
DEFAULT_FLOOR = 8


@dataclass(frozen=True)
class Fit:
    """How a table gives way on a narrow terminal.

    ``keep``: never shrunk nor dropped. ``give_way``: the columns that shrink then disappear first, in
    this order (columns named nowhere follow, right to left). ``floors``: the narrowest a column may
    shrink to (default 8; a column whose floor is its full width never shrinks, only disappears).
    ``caps``: the widest a column is drawn on a terminal.
    """

    keep: frozenset[str] = frozenset({"ID", "JOB", "STATUS"})
    give_way: tuple[str, ...] = ("MESSAGE",)
    floors: Mapping[str, int | None] = field(default_factory=dict)
    caps: Mapping[str, int] = field(default_factory=dict)


DEFAULT_FIT = Fit()


def natural_widths(
    columns: Sequence[str], rows: Sequence[Sequence[str]], natural: list[int] | None = None
) -> list[int]:
    """Widest cell per column (at least the header); grown in place when ``natural`` is given, so a
    big table can be measured a chunk of rows at a time."""
    from rich.cells import cell_len

    natural = natural if natural is not None else [cell_len(name) for name in columns]
    for row in rows:
        for i, cell in enumerate(row):
            natural[i] = max(natural[i], cell_len(cell))
    return natural


def fit_natural(
    columns: Sequence[str], natural: Sequence[int], width: int | None, fit: Fit = DEFAULT_FIT, *, gap: int = GAP
) -> list[int | None]:
    """The width of each column in ``width`` cells from the natural widths, ``None`` for a column
    that gave way entirely (see the module doc)."""
    widths: list[int | None] = [
        min(w, fit.caps[name]) if name in fit.caps else w for w, name in zip(natural, columns, strict=True)
    ]
    if width is None:
        return widths

    def excess() -> int:
        shown = [w for w in widths if w is not None]
        return sum(shown) + gap * (len(shown) - 1) - width

    named = [c for c in fit.give_way if c in columns]
    order = named + [c for c in reversed(columns) if c not in fit.keep and c not in named]
    for name in order:
        over = excess()
        if over <= 0:
            return widths
        i = columns.index(name)
        current = widths[i]
        assert current is not None
        floor = fit.floors.get(name, DEFAULT_FLOOR)
        floor = current if floor is None else min(current, floor)
        widths[i] = current - min(over, current - floor)
    for name in order:
        if excess() <= 0:
            break
        widths[columns.index(name)] = None
    return widths


def fit_widths(
    columns: Sequence[str], rows: Sequence[Sequence[str]], width: int | None, fit: Fit = DEFAULT_FIT, *, gap: int = GAP
) -> list[int | None]:
    """The width of each column in ``width`` cells, ``None`` for a column that gave way entirely."""
    return fit_natural(columns, natural_widths(columns, rows), width, fit, gap=gap)


def render_plain(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Whole cells, aligned, no trailing spaces: the piped form of a table."""
    from rich.cells import cell_len

    cells = [list(columns)] + [[one_line(c) for c in row] for row in rows]
    widths = [max(cell_len(row[i]) for row in cells) for i in range(len(columns))]
    lines = []
    for row in cells:
        parts = [cell + " " * (widths[i] - cell_len(cell)) for i, cell in enumerate(row)]
        lines.append((" " * PLAIN_GAP).join(parts).rstrip())
    return "\n".join(lines) + "\n"


def rich_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int | None,
    fit: Fit = DEFAULT_FIT,
    *,
    boxed: bool = True,
    title: str | None = None,
    widths: Sequence[int | None] | None = None,
    show_header: bool = True,
) -> tuple[Any, int]:
    """A rich Table fitted to ``width`` (or with the given column ``widths``) and the width it needs
    (more than ``width`` only when the ``keep`` columns alone do not fit)."""
    from rich import box
    from rich.table import Table

    if widths is None:
        widths = fit_widths(columns, rows, width, fit)
    table = Table(
        box=box.SIMPLE_HEAD if boxed else None,
        show_edge=False,
        pad_edge=False,
        header_style="bold",
        title=title,
        show_header=show_header,
    )
    shown = [i for i, w in enumerate(widths) if w is not None]
    for i in shown:
        table.add_column(columns[i], no_wrap=True, overflow="ellipsis", width=max(1, widths[i] or 1))
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    needed = sum(widths[i] or 0 for i in shown) + GAP * (len(shown) - 1)
    return table, needed


def print_table(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    fit: Fit = DEFAULT_FIT,
    title: str | None = None,
) -> None:
    """A table on ``console``: fitted on a terminal, plain (never cut, never padded) otherwise."""
    if not console.is_terminal:
        from perianctl.redact import scrub

        if title:
            console.file.write(scrub(title) + "\n")
        console.file.write(scrub(render_plain(columns, rows)))
        console.file.flush()
        return
    table, needed = rich_table(columns, rows, console.size.width, fit, title=title)
    console.print(table, width=max(console.size.width, needed), crop=False)
