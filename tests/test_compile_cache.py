"""Tests for lira_jax.train.compile_cache: where the cache lives, and that a second process
loads what the first compiled instead of compiling it."""

import subprocess
import textwrap
from pathlib import Path

import pytest

from lira_jax.train import compile_cache
from tests.binaries import run_python


def test_where_the_cache_lives(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    default = compile_cache.resolve_cache_dir()
    assert default.parent == tmp_path / "xdg" / "lira_jax" / "jax"
    assert len(default.name) == 12  # the host's CPU type
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert str(compile_cache.resolve_cache_dir()).startswith(str(tmp_path / "home" / ".cache"))
    monkeypatch.setenv(compile_cache.ENV_VAR, str(tmp_path / "env"))
    assert compile_cache.resolve_cache_dir() == tmp_path / "env"
    assert compile_cache.resolve_cache_dir(str(tmp_path / "flag")) == tmp_path / "flag"
    for off in ("off", "", "None", " false "):
        assert compile_cache.resolve_cache_dir(off) is None
        monkeypatch.setenv(compile_cache.ENV_VAR, off)
        assert compile_cache.resolve_cache_dir() is None
    # The flag wins over an "off" environment.
    assert compile_cache.resolve_cache_dir(str(tmp_path / "flag")) == tmp_path / "flag"


def test_unusable_directories(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match=r"--compile_cache='.*file/cache'.*writable.*'off'"):
        compile_cache.enable(str(blocker / "cache"))
    monkeypatch.setenv(compile_cache.ENV_VAR, str(blocker / "env"))
    with pytest.raises(ValueError, match=compile_cache.ENV_VAR):
        compile_cache.enable()
    # An unusable default is not an error: the run goes on without a cache.
    monkeypatch.delenv(compile_cache.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert compile_cache.enable(log=lambda _: None) is None
    assert compile_cache.enable("off") is None


_PROGRAM = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp
    from lira_jax.train import compile_cache
    compile_cache.enable(sys.argv[1], log=lambda _: None)
    # A small program (compiles in well under JAX's default 1 s threshold).
    f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum() * 3.0)
    print(float(f(jnp.arange(12.0).reshape(3, 4))))
    """
)


def _run(cache: Path) -> subprocess.CompletedProcess:
    return run_python("-c", _PROGRAM, str(cache), timeout=300, JAX_LOG_COMPILES="1")


def test_a_second_process_loads_instead_of_compiling(tmp_path):
    cache = tmp_path / "cache"
    first, second = _run(cache), _run(cache)
    assert first.returncode == 0 and second.returncode == 0, first.stderr[-2000:]
    assert first.stdout == second.stdout
    assert "Persistent compilation cache hit" not in first.stderr
    assert any(cache.iterdir())  # the small program was written
    assert "Persistent compilation cache hit for 'jit__lambda'" in second.stderr
    off = _run(Path("off"))
    assert off.returncode == 0 and "cache hit" not in off.stderr
