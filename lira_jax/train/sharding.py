"""Where models run: the devices of one process, and the processes of a job.

Design notes: models never talk to each other, so scaling out is a partition of the
models axis, never of a model. Within a process, a block's models axis is sharded over a
1-D mesh ("models") of the process's local devices (the engine's `shard_map`; the
dataset is replicated, nothing is communicated). On CPU the binaries split the host into
one device per core (`use_cpu_cores_as_devices`), so that cores train different models
rather than share each small matmul. Across processes there are two ways, both
writing disjoint model ranges of one store: independent jobs given explicit
`--model_range`s (any scheduler, no coordination), or one multi-process JAX job
(`jax.distributed.initialize()`), where process i of P takes the i-th contiguous share of
the range (`process_share`). Either way a model's result depends only on its index, so
every layout gives the same models.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

MESH_AXIS = "models"


def use_cpu_cores_as_devices(count: int | None = None) -> int:
    """Splits the host CPU into `count` JAX devices (default: one per usable core).

    Each CPU device then trains its share of a block as its own program, on its own
    thread; measured on 2 cores (digits cnn32), that is ~1.6x the throughput of one CPU
    device whose small matmuls are split over both cores. Harmless where the default
    backend is a GPU/TPU (only the host platform is split). Must run before JAX
    initialises its backends (before any JAX computation); the binaries call it first
    thing. A device count already set by the user (`XLA_FLAGS=
    --xla_force_host_platform_device_count=N` or `jax_num_cpu_devices`) is kept.

    Returns:
      The number of CPU devices requested (0 when it was too late or already set).
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return 0
    if jax.config.jax_num_cpu_devices > 0:
        return 0
    count = count or len(os.sched_getaffinity(0))
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # backends already initialised: keep what there is
        return 0
    return count


def models_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis "models" over `devices` (default: all local devices).

    Local devices only: in a multi-process job each process trains its own model range on
    its own devices, so no collective ever crosses hosts.

    Raises:
      ValueError: `devices` is empty or mixes platforms.
    """
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices is empty; pass None to use all local devices.")
    platforms = {d.platform for d in devices}
    if len(platforms) > 1:
        raise ValueError(f"devices mix platforms {sorted(platforms)}; use devices of one kind.")
    return Mesh(np.array(devices), (MESH_AXIS,))


def padded_size(num_models: int, num_devices: int) -> int:
    """`num_models` rounded up to a multiple of `num_devices` (a block's padded size)."""
    return -(-int(num_models) // int(num_devices)) * int(num_devices)


def pad_models(a: np.ndarray, size: int) -> np.ndarray:
    """Pads the leading (models) axis of `a` to `size` with copies of its last row.

    The copies are real models (the last model again), so padding never creates a
    degenerate computation; their results are dropped.
    """
    a = np.asarray(a)
    if a.shape[0] > size:
        raise ValueError(f"Cannot pad {a.shape[0]} models down to {size}.")
    if a.shape[0] == size:
        return a
    return np.concatenate([a, np.repeat(a[-1:], size - a.shape[0], axis=0)])


def process_share(start: int, stop: int, process_index: int, process_count: int) -> tuple[int, int]:
    """The contiguous share [a, b) of models [start, stop) for process `process_index`.

    Shares differ in size by at most one model, the larger ones first, and together cover
    [start, stop) exactly once.

    Raises:
      ValueError: more processes than models, or a bad index.
    """
    n = stop - start
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} must be in [0, {process_count}).")
    if n < process_count:
        raise ValueError(
            f"{process_count} processes for {n} models [{start}, {stop}): every process needs "
            "at least one model; use fewer processes or a larger --model_range."
        )
    base, extra = divmod(n, process_count)
    a = start + process_index * base + min(process_index, extra)
    return a, a + base + (process_index < extra)


def initialize_distributed(**kwargs) -> tuple[int, int]:
    """Initialises a multi-process JAX job once; returns (process_index, process_count).

    Must run before anything touches a JAX device. Arguments are passed to
    `jax.distributed.initialize`; without them JAX detects the cluster (SLURM, Open MPI,
    Kubernetes, Cloud TPU). Elsewhere set `JAX_COORDINATOR_ADDRESS` (host:port of process
    0, read by JAX) and `JAX_NUM_PROCESSES` / `JAX_PROCESS_ID` (read here). A second call
    in the same process returns the existing job's numbers.
    """
    if not jax.distributed.is_initialized():
        for name, env in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
            if name not in kwargs and os.environ.get(env):
                kwargs[name] = int(os.environ[env])
        jax.distributed.initialize(**kwargs)
    return jax.process_index(), jax.process_count()
