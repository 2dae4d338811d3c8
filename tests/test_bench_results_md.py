"""bench/results_md.write_section: a benchmark's RESULTS.md section is replaced in place or appended,
and nothing outside its markers changes."""
from __future__ import annotations

import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def writer(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module("results_md").write_section


def test_a_section_is_replaced_in_place(tmp_path, monkeypatch):
    write_section = writer(monkeypatch)
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n<!-- a:start -->\nold a\n<!-- a:end -->\n\n<!-- b:start -->\nb\n<!-- b:end -->\n")
    write_section("<!-- a:start -->\nnew a\nline 2\n<!-- a:end -->\n", "<!-- a:start -->", "<!-- a:end -->", path)
    assert path.read_text() == ("# Benchmark results\n\n<!-- a:start -->\nnew a\nline 2\n<!-- a:end -->\n\n"
                                "<!-- b:start -->\nb\n<!-- b:end -->\n")


def test_a_missing_section_is_appended_after_its_heading(tmp_path, monkeypatch):
    write_section = writer(monkeypatch)
    path = tmp_path / "RESULTS.md"
    write_section("<!-- c:start -->\nc\n<!-- c:end -->", "<!-- c:start -->", "<!-- c:end -->", path, heading="## C\n\n")
    assert path.read_text() == "# Benchmark results\n\n## C\n\n<!-- c:start -->\nc\n<!-- c:end -->\n"
    write_section("<!-- c:start -->\nc2\n<!-- c:end -->", "<!-- c:start -->", "<!-- c:end -->", path, heading="## C\n\n")
    assert path.read_text() == "# Benchmark results\n\n## C\n\n<!-- c:start -->\nc2\n<!-- c:end -->\n"
