"""The Keras tests again on the JAX backend: prunekit.keras is written with keras.ops, so it must not
depend on torch being Keras' backend. Keras fixes its backend at import, hence a fresh process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
FILES = ["test_keras_prune.py", "test_keras_fit.py", "test_keras_compact_io.py"]


def test_keras_tests_pass_on_the_jax_backend() -> None:
    pytest.importorskip("jax")
    import keras_util  # noqa: F401  (skips when keras is missing)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", *FILES],
        cwd=HERE, env={**os.environ, "KERAS_BACKEND": "jax"}, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "jax" in subprocess.run(
        [sys.executable, "-c", "import keras_util, keras; print(keras.backend.backend())"], cwd=HERE,
        env={**os.environ, "KERAS_BACKEND": "jax"}, capture_output=True, text=True).stdout
