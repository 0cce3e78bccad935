"""JAX's persistent compilation cache: a program is compiled once per machine, not per process.

Design notes: a training run compiles the block's epoch, its init and the query pass
(several seconds each on a CPU); the next block of another job, or the same command run
again, compiles exactly the same programs. JAX can keep compiled executables on disk
(`jax_compilation_cache_dir`); by default it stores only programs that took at least 1 s
to compile, so the many small ones (model keys, unpadding, the init) would still be
compiled in every process. `enable` lowers both thresholds to zero.

Where the cache lives, first match wins:
1. the `setting` argument (the binaries' `--compile_cache` flag);
2. the environment variable `LIRA_JAX_CACHE_DIR`;
3. `$XDG_CACHE_HOME/lira_jax/jax`, else `~/.cache/lira_jax/jax`.
"off", "none", "0", "false" or an empty string (as setting or environment value) turns
the cache off. The default directory has one subdirectory per host CPU type (a hash of
the CPU model and feature flags): XLA compiles for the host's instruction set, and JAX's
cache key does not include it, so a home directory shared by different cluster nodes must
not hand one node's executables to another.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
from pathlib import Path

import jax

ENV_VAR = "LIRA_JAX_CACHE_DIR"
OFF_VALUES = ("", "off", "none", "0", "false")

__all__ = ["ENV_VAR", "OFF_VALUES", "default_cache_dir", "enable", "resolve_cache_dir"]


def _host_tag() -> str:
    """A short hash of the CPU model and instruction-set flags (what XLA compiles for)."""
    parts = [platform.machine()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key in ("model name", "flags", "Features", "CPU part"):
                    parts.append(line.strip())
                if line.strip() == "":  # the first processor's block is enough
                    break
    except OSError:
        parts.append(platform.processor())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/lira_jax/jax/<host>` (default `~/.cache/...`); see the module notes."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lira_jax" / "jax" / _host_tag()


def _is_off(value: str) -> bool:
    return value.strip().lower() in OFF_VALUES


def resolve_cache_dir(setting: str | None = None) -> Path | None:
    """The cache directory to use, or None for no cache.

    Args:
      setting: an explicit directory or an off value (see `OFF_VALUES`); None: the
        environment variable `LIRA_JAX_CACHE_DIR`, else `default_cache_dir()`.

    Returns:
      The directory (not created), or None when the cache is turned off.
    """
    for value in (setting, os.environ.get(ENV_VAR)):
        if value is not None:
            return None if _is_off(value) else Path(value).expanduser()
    return default_cache_dir()


def enable(setting: str | None = None, *, log=logging.info) -> Path | None:
    """Turns on JAX's persistent compilation cache for this process; caches every program.

    Call it before JAX compiles anything (JAX decides once, at its first compilation,
    whether the cache is used); the training binaries call it first thing.

    Args:
      setting: as in `resolve_cache_dir`.
      log: where the one line saying which directory is used goes.

    Returns:
      The cache directory, or None when turned off or when the default directory cannot
      be created (a warning then says so; the run proceeds without a cache).

    Raises:
      ValueError: an explicitly given directory (argument or environment variable) cannot
        be created or written.
    """
    path = resolve_cache_dir(setting)
    if path is None:
        return None
    explicit = setting is not None or os.environ.get(ENV_VAR) is not None
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise PermissionError(f"{path} is not writable")
    except OSError as e:
        if explicit:
            source = "--compile_cache" if setting is not None else ENV_VAR
            raise ValueError(
                f"{source}={str(setting if setting is not None else os.environ[ENV_VAR])!r}: "
                f"cannot use it as the compilation cache ({e}). Give a writable directory, "
                "or 'off' to compile without a cache."
            ) from None
        logging.warning(
            "compilation cache disabled: cannot create %s (%s); set %s to a writable "
            "directory to compile only once.",
            path,
            e,
            ENV_VAR,
        )
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    log(f"compilation cache: {path}")
    return path
