"""Terminal tables with ``rich``, sized to the terminal: one line per row, columns never wrapped."""
from __future__ import annotations

from typing import Sequence

from rich import box
from rich.console import Console
from rich.table import Table


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]], *,
          right: Sequence[bool] | None = None, caption: str | None = None) -> Table:
    """A compact table: first column left-aligned, the others right-aligned unless ``right`` says."""
    t = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
              title_justify="left", caption_justify="left")
    for i, name in enumerate(columns):
        justify = "right" if (right[i] if right is not None else i > 0) else "left"
        t.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis")
    for row in rows:
        t.add_row(*row)
    return t


def console(width: int | None = None) -> Console:
    """The terminal (or a fixed ``width`` for tests); plain text when not a terminal."""
    return Console(width=width, highlight=False, soft_wrap=False)
