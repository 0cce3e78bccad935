"""The PyTorch peer of the whole-process benchmark computes what the project computes, and
the benchmark reads phases from both processes' logs.

Tests that run torch need the optional `[bench]` extra (`pip install -e '.[bench]'`); where
torch is not installed they are skipped (torch is never a test dependency). The rest runs
everywhere.
"""

import datetime

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.bench import throughput, torch_peer, whole
from lira_jax.data import augment
from lira_jax.models import get_model


def test_query_names_round_trip():
    for spec, mirror in [("cross1", False), ("shift1", True), ("mirror", True)]:
        queries = augment.query_set(spec, mirror)
        parsed = torch_peer.parse_queries(list(augment.query_names(queries)))
        assert parsed == [(q.mirror, q.dy, q.dx) for q in queries]
    # Rotations (label-only query sets) are not part of the peer's recipe: refused by name.
    rotated = augment.query_names(augment.query_set("rot1", False))
    with pytest.raises(ValueError, match="not like"):
        torch_peer.parse_queries([n for n in rotated if "rot" in n])
    with pytest.raises(ValueError, match="'flip_dy0'"):
        torch_peer.parse_queries(["flip_dy0"])


def test_learning_rate_schedule_is_optax_s():
    total, warmup, peak = 90, 12, 0.05
    schedule = optax.warmup_cosine_decay_schedule(0.0, peak, warmup, total)
    for step in range(total + 3):
        assert torch_peer.lr_at(step, peak, warmup, total) == pytest.approx(
            float(schedule(step)), rel=1e-5, abs=1e-9
        )


def test_shift_batch_is_the_project_shift():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(6, 7, 5, 2)).astype(np.float32)  # NHWC
    dy, dx = np.array([-2, -1, 0, 1, 2, 0]), np.array([1, -2, 0, 2, -1, 2])
    want = np.stack([augment.shift_image(x[i], dy[i], dx[i], 2) for i in range(6)])
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    got = torch_peer.shift_batch(torch, xt, torch.from_numpy(dy), torch.from_numpy(dx), 2)
    np.testing.assert_array_equal(got.numpy().transpose(0, 2, 3, 1), want)
    fixed = torch_peer.shift_batch(torch, xt, -1, 1, 1)
    np.testing.assert_array_equal(
        fixed.numpy().transpose(0, 2, 3, 1), augment.shift_image(x, -1, 1, 1)
    )


@pytest.mark.parametrize("hw", [8, 28])
def test_torch_cnn_is_the_zoo_cnn(hw):
    torch = pytest.importorskip("torch")
    zoo = get_model("cnn32", 10, "lax")
    params = zoo.init(jax.random.PRNGKey(0), jnp.zeros((1, hw, hw, 1)))["params"]
    net = torch_peer.build_cnn(torch, 10, 32, 1, (hw, hw))
    # Copy the zoo's weights into the torch model: the same function must come out.
    convs = [params[f"Conv2D_{i}"] for i in range(3)]
    with torch.no_grad():
        for conv, p in zip(net.convs, convs, strict=True):
            conv.weight.copy_(torch.from_numpy(np.array(p["kernel"]).transpose(3, 2, 0, 1).copy()))
            conv.bias.copy_(torch.from_numpy(np.array(p["bias"])))
        side = {8: 1, 28: 3}[hw]  # after three 2x2 pools (none on 1x1 maps)
        kernel = np.array(params["Dense_0"]["kernel"]).reshape(side, side, 128, 10)
        net.fc.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).reshape(10, -1)))
        net.fc.bias.copy_(torch.from_numpy(np.array(params["Dense_0"]["bias"])))
    x = np.random.default_rng(1).normal(size=(4, hw, hw, 1)).astype(np.float32)
    want = zoo.apply({"params": params}, x)
    got = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _stamp(t: float) -> str:
    d = datetime.datetime.fromtimestamp(t)
    return d.strftime("%m%d %H:%M:%S.%f")


def test_phases_from_the_phases_line_and_from_log_timestamps():
    text = (
        "I1129 x.py:1] something\nI1129 x.py:9] phases: startup=1.50s compile=2.25s "
        "train=10.00s query=3.00s store_write=0.25s total=17.00s\n"
    )
    phases, note = whole.parse_phases(text, 0.0, 18.0)
    assert phases == {
        "compile": 2.25,
        "train": 10.0,
        "query": 3.0,
        "write": 0.25,
        "startup & exit": pytest.approx(2.5),
    }
    assert note == ""
    # A log without a phases line: first line at +2 s, epochs end at +12 s, block written
    # at +15 s; XLA compiled 1.5 s before the first epoch and 0.5 s after the last.
    t0 = datetime.datetime(2026, 11, 29, 10, 0, 0).timestamp()
    lines = [
        (2.0, "I{} train_shadows.py:1] Training 4 of 4 models (digits, cnn32, N=9) in 1 block"),
        (3.0, "W{} dispatch.py:1] Finished XLA compilation of jit(epoch) in 1.5 sec"),
        (8.0, "I{} train_shadows.py:2] models [0, 4) epoch 1/2: loss 1.0, 100 examples/s"),
        (12.0, "I{} train_shadows.py:2] models [0, 4) epoch 2/2: loss 0.9, 100 examples/s"),
        (12.5, "W{} dispatch.py:1] Finished XLA compilation of jit(local) in 0.5 sec"),
        (15.0, "I{} train_shadows.py:3] wrote models [0, 4): train acc 0.9"),
    ]
    text = "\n".join(line.format(_stamp(t0 + t)) for t, line in lines)
    phases, note = whole.parse_phases(text, t0, 16.0)
    assert phases["compile"] == pytest.approx(2.0)
    assert phases["train"] == pytest.approx(10.0 - 1.5, abs=1e-3)
    assert phases["query"] == pytest.approx(3.0 - 0.5, abs=1e-3)
    assert phases["startup & exit"] == pytest.approx(16.0 - 2.0 - 8.5 - 2.5, abs=1e-3)
    assert "store write" in note
    assert whole.parse_phases("no log", t0, 3.0) == (
        {"startup & exit": 3.0},
        "no phases found in the log",
    )


def test_whole_benchmark_counts_the_work_and_reports_rates():
    work = whole.workload_work(
        whole.WORKLOADS["digits"], None, throughput.forward_flops_per_example
    )
    # 32 models; each of the 1,500 pool examples is IN for exactly 16 of them; 30 epochs.
    assert work.train_examples == 1500 * 16 * 30
    # Every model: 5 queries (cross1) of each pool example, then the 297 test examples.
    assert work.forwards == 32 * (1500 * 5 + 297)
    # cnn32 on 8x8x1: 3x3 convolutions 1->32 on 8x8, 32->64 on 4x4, 64->128 on 2x2, dense.
    assert work.forward_flops == 2 * (64 * 9 * 32 + 16 * 9 * 32 * 64 + 4 * 9 * 64 * 128 + 1280)
    runs = [
        whole.ProcessRun("project", 20.0, 1.0, 0, {"train": 10.0, "query": 4.0}),
        whole.ProcessRun("peer", 30.0, 1.0, 0, {"train": 20.0, "query": 5.0}),
    ]
    out = []
    whole._report_rates(out, work, runs, peak=100e9)
    text = "\n".join(out)
    project = next(line for line in text.splitlines() if "train_shadows" in line)
    assert f"{work.train_examples / 10:,.0f}" in project
    assert f"{work.forwards / 4:,.0f}" in project
    gflops = work.train_examples / 10 * 3 * work.forward_flops / 1e9
    assert f"{gflops:.0f} ({gflops / 100:.0%} of peak)" in project
