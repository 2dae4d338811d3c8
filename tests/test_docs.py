"""docs/EXTENDING.md's worked examples run as written, in order, in a fresh process."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).parents[1] / "docs" / "EXTENDING.md"


def test_extending_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 3, "EXTENDING.md lost its examples"
    script = "\n".join(f"exec(compile({b!r}, 'EXTENDING.md example {i}', 'exec'))" for i, b in enumerate(blocks))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
