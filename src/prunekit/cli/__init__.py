"""The ``prunekit`` command: one file per subcommand family (sweeps in ``main``, models, gap)."""
from .main import build_parser, main

__all__ = ["main", "build_parser"]
