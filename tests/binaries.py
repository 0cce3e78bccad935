"""Running the project's binaries (and small programs) in fresh interpreters, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def binary_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this checkout importable, JAX on the CPU."""
    return {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu", **extra}


def run_binary(module: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m experiments.<module> args...` from the repository root; output captured."""
    return run_python("-m", f"experiments.{module}", *args, timeout=timeout)


def run_python(*argv: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """`python argv...` from the repository root (`env`: extra environment variables)."""
    return subprocess.run(
        [sys.executable, *argv],
        cwd=REPO,
        env=binary_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
