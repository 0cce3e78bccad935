"""Smoke tests of experiments/bench/throughput.py: FLOP counts against hand counts, both trainers
on a tiny setting, the table. No timing assertions."""

import jax
import jax.numpy as jnp
import numpy as np

from experiments.bench import throughput
from lira_jax.data import keep_mask
from lira_jax.models import get_model
from tests.binaries import run_binary


def _hand_count(hw: int, widths=(32, 64, 128), classes: int = 10) -> int:
    """2 x MACs of the zoo CNN: 3x3 'SAME' convs (border positions counted), 2x2 pools."""
    macs, c = 0, 1
    for w in widths:
        macs += hw * hw * 9 * c * w
        c, hw = w, hw // 2 if hw >= 2 else hw
    return 2 * (macs + hw * hw * c * classes)


def test_forward_flops_match_hand_counts():
    assert throughput.forward_flops_per_example("cnn32", 10, (8, 8, 1)) == _hand_count(8)
    assert throughput.forward_flops_per_example("cnn32", 10, (28, 28, 1)) == _hand_count(28)
    assert throughput.forward_flops_per_example("cnn16", 10, (8, 8, 1)) == _hand_count(
        8, (16, 32, 64)
    )


def test_flax_baseline_has_the_zoo_architecture():
    x = jnp.zeros((1, 8, 8, 1))
    zoo = get_model("cnn32", 10, "lax").init(jax.random.PRNGKey(0), x)
    flax = throughput.FlaxCNN(10, 32, 3).init(jax.random.PRNGKey(0), x)
    shapes = lambda p: sorted(a.shape for a in jax.tree.leaves(p))
    assert shapes(zoo) == shapes(flax)


def test_both_trainers_run_and_the_table_prints():
    setting = throughput.Setting("digits_tiny", "cnn16", 64, 16, (2,), (2,))
    data = throughput.load_setting_data(setting)
    assert data[0].shape == (64, 8, 8, 1)
    keep = keep_mask(0, 2, 64, 0.5)
    fwd = throughput.forward_flops_per_example("cnn16", 10, (8, 8, 1))
    base = throughput.run_flax_loop(setting, data, keep, 1, 1, fwd)
    res, (engine, params) = throughput.run_engine(setting, data, keep, 2, None, 1, fwd)
    assert res.block == 2 and res.model_epochs == 2 and res.seconds > 0
    assert res.useful_flops == keep.sum() * 3 * fwd
    assert base.useful_flops == keep[0].sum() * 3 * fwd
    assert jax.tree.leaves(params[0])[0].shape[0] == 2
    text = throughput.table(throughput.result_rows([base, res], base, 1e11), throughput.HEADER)
    lines = text.splitlines()
    assert lines[0].startswith("| trainer | M |") and len(lines) == 4
    assert "| 1.0x |" in lines[2] and np.isfinite(res.block_mib)


def test_synthetic_logits_of_the_attack_benchmark():
    from experiments.bench.attacks import SyntheticLogits

    m, n, a, c = 64, 300, 4, 5
    keep = keep_mask(0, m, n, 0.5)
    labels = np.random.default_rng(1).integers(0, c, n)
    logits = SyntheticLogits(keep, labels, a, c)
    block = logits[:]
    assert block.shape == (m, n, a, c) and block.dtype == np.float32
    np.testing.assert_array_equal(logits[5:7], block[5:7])  # a pure function of (seed, m)
    # Query effects are the same for every model; model noise is shared by the queries.
    diff = block[:, :, 1:] - block[:, :, :1]
    np.testing.assert_allclose(diff, np.broadcast_to(diff[:1], diff.shape), atol=1e-5)
    # The label logit of IN models exceeds that of OUT models by the membership effect.
    label_logit = block[:, np.arange(n), 0, labels]  # [M, N]
    gap = np.array(
        [label_logit[keep[:, i], i].mean() - label_logit[~keep[:, i], i].mean() for i in range(n)]
    )
    se = np.sqrt(2 / 32)  # unit noise, 32 IN and 32 OUT models
    assert np.abs(gap - logits.effect).mean() < 1.5 * se
    assert np.corrcoef(gap, logits.effect)[0, 1] > 0.5


def test_attack_benchmark_runs_as_a_binary_without_a_workdir():
    """The binary shares flags with experiments.attack (flagdefs) but has no run directory."""
    proc = run_binary(
        "bench.attacks",
        "--num_models=8",
        "--num_examples=200",
        "--num_queries=2",
        "--num_targets=2",
        "--attacks=lira_online,yeom",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "M=8 N=200 A=2 C=10" in proc.stdout and "| lira_online |" in proc.stdout
