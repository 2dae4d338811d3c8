"""A rich progress bar for sweeps, fed by the sweep driver's ``progress(label, done, total)`` calls."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

Report = Callable[[str, int, int], None]


@contextlib.contextmanager
def bar(enabled: bool = True) -> Iterator[Report | None]:
    """Yields a progress callback showing one bar per phase (base models, runs); None when disabled."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.fields[phase]}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.description}")) as progress:
        tasks: dict[str, int] = {}

        def update(label: str, done: int, total: int) -> None:
            phase = "bases" if label.startswith("base ") else "runs"
            if phase not in tasks:
                tasks[phase] = progress.add_task("", total=total, phase=phase)
            progress.update(tasks[phase], completed=done, description=label)

        yield update
