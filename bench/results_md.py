"""One benchmark's section of bench/RESULTS.md: replaced in place between its markers, or appended.

Every bench script writes its own section through :func:`write_section`, so text outside a script's
markers (other benchmarks' sections, headings) is never touched.
"""
from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(section: str, start: str, end: str, path: Path = RESULTS, heading: str = "") -> None:
    """Put ``section`` (text that begins with marker ``start`` and ends with ``end``) where the old one
    stands, or append it after ``heading`` when the file has none."""
    section = section.strip("\n")
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if start in old and end in old:
        new = old[: old.index(start)] + section + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + heading + section + "\n"
    path.write_text(new)
