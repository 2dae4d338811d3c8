"""The benchmark harness: validated configs, a resumable SQLite store, executors, runner and reports.

``sweep(load("configs/mnist-lenet.yaml"), "out/")`` runs a grid; ``report("out/")`` writes the report.
"""
from pathlib import Path

from .config import BaseSpec, ConfigError, ExperimentConfig, MethodSpec, RunSpec, identity, load, parse
from .executors import Processes, Ray, Sequential, make
from .report import report
from .runner import Env
from .store import Store
from .sweep import Outcome, ResumeError, sweep

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")  # the one demo config, shipped with the package

__all__ = [
    "DEMO_CONFIG",
    "load", "parse", "identity", "ExperimentConfig", "BaseSpec", "RunSpec", "MethodSpec", "ConfigError",
    "sweep", "Outcome", "ResumeError", "Env", "Store", "report", "make", "Sequential", "Processes", "Ray",
]
