"""README's "Bring your own model and data" example runs as written from a fresh folder: the files it
shows are written, and its commands (the installed ``prunekit`` script) all succeed."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("### Bring your own model and data")
    return text[start:text.index("\n### ", start + 1)]


def test_readme_bring_your_own_example_runs(tmp_path):
    blocks = re.findall(r"```(\w+)\n(.*?)```", _section(), re.S)
    assert [kind for kind, _ in blocks] == ["python", "yaml", "bash"]
    for kind, body in blocks[:2]:
        name = body.splitlines()[0].lstrip("# ").strip()
        (tmp_path / name).write_text(body)
    script = Path(sys.executable).with_name("prunekit")
    prunekit = [str(script)] if script.exists() else [sys.executable, "-m", "prunekit"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for line in blocks[2][1].strip().splitlines():
        argv = shlex.split(line.split("  #")[0])
        argv = (prunekit + argv[1:]) if argv[0] == "prunekit" else ([sys.executable] + argv[1:])
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert (tmp_path / "my-results" / "report.md").exists()
    top1 = float(done.stdout.split("top-1 ")[1].split("%")[0])
    assert top1 > 80, done.stdout  # digits: the pruned, fine-tuned user model really learned
    assert (tmp_path / "tuned.safetensors").stat().st_size < (tmp_path / "dense.pt").stat().st_size / 2
