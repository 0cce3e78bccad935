"""Scaling out: the models axis sharded over devices, and model ranges over processes.

Multi-device runs happen in a subprocess with `--xla_force_host_platform_device_count=8`
(the flag must be set before JAX initialises, and the rest of the suite keeps one device).
Each comparison is against the ordinary one-device engine in this process.
"""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments import train_shadows
from lira_jax import store as store_lib
from lira_jax.data import keep_mask, load_dataset, query_set
from lira_jax.train import Engine, TrainConfig, query_logits, sharding, steps_per_epoch

REPO = Path(__file__).resolve().parents[1]
TINY = dict(max_train=120, arch="cnn16", num_models=6, epochs=1, batch_size=32, queries="identity")
TINY_FLAGS = [f"--{k}={v}" for k, v in TINY.items()]
N = 64
BLOCK = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11])  # 11 models: padded to 16 on 8 devices
CONFIG = dict(arch="cnn16", num_classes=10, epochs=1, batch_size=16, seed=3, conv_impl="patches")

# Runs in the 8-device subprocess; writes its params and logits to argv[1].
_EIGHT_DEVICES = textwrap.dedent(
    f"""
    import sys
    import jax, numpy as np
    from lira_jax.data import keep_mask, load_dataset, query_set
    from lira_jax.train import Engine, TrainConfig, query_logits, steps_per_epoch

    assert jax.local_device_count() == 8, jax.local_devices()
    ds = load_dataset("digits", max_train={N})
    keep = keep_mask(0, 12, {N}, 0.5)
    engine = Engine(TrainConfig(**{CONFIG!r}), ds.x_train, ds.y_train, steps_per_epoch(keep, 16),
                    model_chunk=1)
    block = np.array({BLOCK.tolist()!r})
    state = engine.init(block)
    assert len(jax.tree.leaves(state)[0].sharding.device_set) == 8
    params = engine.train(block, keep[block])
    logits = query_logits(engine.model, params, ds.x_train, query_set("cross1", False), chunk={N})
    np.savez(sys.argv[1], logits=logits,
             **{{str(i): np.asarray(p) for i, p in enumerate(jax.tree.leaves(params))}})
    """
)


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu", **extra}


def _flat(leaves):
    return np.concatenate([np.ravel(p) for p in leaves])


def test_sharded_engine_equals_single_device(tmp_path):
    out = tmp_path / "eight.npz"
    child = subprocess.Popen(
        [sys.executable, "-c", _EIGHT_DEVICES, str(out)],
        cwd=REPO,
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Meanwhile, the same block on this process's single device (default model chunk).
    ds = load_dataset("digits", max_train=N)
    keep = keep_mask(0, 12, N, 0.5)
    engine = Engine(TrainConfig(**CONFIG), ds.x_train, ds.y_train, steps_per_epoch(keep, 16))
    assert engine.num_devices == 1
    params = engine.train(BLOCK, keep[BLOCK])
    logits = query_logits(engine.model, params, ds.x_train, query_set("cross1", False), chunk=N)
    _, err = child.communicate(timeout=600)
    assert child.returncode == 0, err[-3000:]
    eight = np.load(out)
    leaves = jax.tree.leaves(params)
    assert eight["0"].shape[0] == len(BLOCK)  # the 5 padding models were dropped
    np.testing.assert_allclose(
        _flat([eight[str(i)] for i in range(len(leaves))]), _flat(leaves), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(eight["logits"], logits, rtol=1e-4, atol=1e-4)


def test_process_share_partitions_a_range():
    for start, stop, count in [(0, 6, 1), (0, 6, 4), (3, 20, 5), (10, 13, 3)]:
        shares = [sharding.process_share(start, stop, i, count) for i in range(count)]
        assert shares[0][0] == start and shares[-1][1] == stop
        assert all(a[1] == b[0] for a, b in zip(shares, shares[1:], strict=False))
        sizes = [b - a for a, b in shares]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="at least one model"):
        sharding.process_share(0, 3, 0, 4)
    assert sharding.padded_size(11, 8) == 16 and sharding.padded_size(16, 8) == 16
    padded = sharding.pad_models(np.arange(6).reshape(3, 2), 5)
    np.testing.assert_array_equal(padded, [[0, 1], [2, 3], [4, 5], [4, 5], [4, 5]])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _train_cli(workdir, *args, **env):
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.train_shadows", f"--workdir={workdir}", *TINY_FLAGS]
        + list(args),
        cwd=REPO,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_concurrent_model_range_jobs_fill_one_store(tmp_path):
    shared = tmp_path / "shared"
    jobs = [
        _train_cli(shared, "--model_range=0:3"),
        # The second job goes through --distributed with a one-process job: it initialises
        # jax.distributed and takes the whole of its range as its share.
        _train_cli(
            shared,
            "--model_range=3:6",
            "--distributed",
            JAX_COORDINATOR_ADDRESS=f"localhost:{_free_port()}",
            JAX_NUM_PROCESSES="1",
            JAX_PROCESS_ID="0",
        ),
    ]
    # Meanwhile, the same config in one process, all models in one block.
    config = train_shadows.make_config("digits", **TINY)
    single = train_shadows.train_shadows(config, tmp_path / "single", log=lambda _: None)
    for job in jobs:
        _, err = job.communicate(timeout=600)
        assert job.returncode == 0, err[-3000:]
    store = store_lib.open_store(shared / "store")
    assert store.missing_ranges() == []
    ranges = sorted(store.completed_ranges())  # blocks of the auto block size
    assert ranges[0][0] == 0 and ranges[-1][1] == 6
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    store.verify()
    np.testing.assert_allclose(store.read_logits(), single.read_logits(), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(store.keep(), single.keep())


def test_cpu_split_is_refused_once_jax_has_started():
    before = jax.local_device_count()  # starts the backends
    assert sharding.use_cpu_cores_as_devices(4) == 0
    assert jax.local_device_count() == before
