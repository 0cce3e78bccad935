"""Tests for lira_jax.train.query: the query pass against plain per-model forward passes,
chunked against unchunked, and the block's accuracies against a direct count."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lira_jax.data import Query, keep_mask, load_dataset, query_set
from lira_jax.models import get_model
from lira_jax.train import QueryLayout, query_conv_impl, query_logits, query_pass
from lira_jax.train.query import _call_sizes

N = 50  # not a multiple of any call size below


@pytest.fixture(scope="module")
def setup():
    ds = load_dataset("digits", max_train=N)
    model = get_model("cnn16", 10, "patches")
    keys = jax.random.split(jax.random.PRNGKey(5), 3)
    params = jax.vmap(lambda k: model.init(k, jnp.zeros((1, 8, 8, 1))))(keys)
    # Spread the logits apart (fresh inits give near-equal ones): every bit then matters.
    params = jax.tree.map(lambda p: p * 3.0, params)
    return ds, model, params


def _views(x, queries):
    """[A, n, H, W, C]: each query applied by hand (numpy reflect padding), not by augment."""
    out = []
    for q in queries:
        v = x[:, :, ::-1] if q.mirror else x
        pad = max(abs(q.dy), abs(q.dx))
        if pad:
            p = np.pad(v, [(0, 0), (pad, pad), (pad, pad), (0, 0)], mode="reflect")
            h, w = x.shape[1:3]
            v = p[:, pad - q.dy : pad - q.dy + h, pad - q.dx : pad - q.dx + w]
        out.append(v)
    return np.stack(out)


@pytest.mark.parametrize("conv", ["patches", "lax"])
def test_query_pass_equals_a_plain_forward_bitwise(setup, conv):
    ds, model, params = setup
    queries = query_set("cross1", False)
    f = 10  # examples per forward: 5 forwards of 10 examples x 5 queries per call
    out = query_logits(model, params, ds.x_train, queries, layout=QueryLayout(conv, f, N))
    assert out.shape == (3, N, 5, 10) and out.dtype == np.float32
    views = _views(ds.x_train, queries)  # [A, N, 8, 8, 1]
    plain = get_model("cnn16", 10, conv)
    forward = jax.jit(plain.apply)
    for m in range(3):
        p = jax.tree.map(lambda a, m=m: a[m], params)
        for s in range(0, N, f):
            # The same batch as one forward of the query pass: f examples x A queries.
            batch = views[:, s : s + f].reshape((-1, 8, 8, 1))
            want = np.asarray(forward(p, batch)).reshape(5, f, 10).transpose(1, 0, 2)
            np.testing.assert_array_equal(out[m, s : s + f], want)
    # The other lowering computes the same function (to float rounding).
    other = "lax" if conv == "patches" else "patches"
    alt = query_logits(model, params, ds.x_train, queries, layout=QueryLayout(other, f, N))
    np.testing.assert_allclose(alt, out, rtol=1e-5, atol=1e-4)
    assert np.abs(out).max() > 1.0


@pytest.mark.parametrize("conv", ["patches", "lax"])
def test_chunked_equals_unchunked(setup, conv):
    ds, model, params = setup
    queries = query_set("shift1", False)  # 9 queries, shifts in both axes
    whole = query_logits(model, params, ds.x_train, queries, layout=QueryLayout(conv, N, N))
    # N = 50 is a multiple of none of these: calls of at most 7, 16, 48 run as 8 calls of
    # 7 (the last starts before the end), 4 of 13 and 2 of 25 (forwards of 4 and 16 that do
    # not divide the call: each call's last forward starts early), and one call of 50 in
    # forwards of 7 or of all 50.
    for per_forward, per_call in [(7, 7), (4, 16), (16, 48), (7, 4096), (64, 4096)]:
        layout = QueryLayout(conv, per_forward, per_call)
        out = query_logits(model, params, ds.x_train, queries, layout=layout)
        # Bitwise: on the CPU backend a row's logits do not depend on the batch around it.
        np.testing.assert_array_equal(out, whole, err_msg=str(layout))
    # ...and the identity slice is the model itself on the raw pool.
    p0 = jax.tree.map(lambda a: a[0], params)
    direct = get_model("cnn16", 10, conv).apply(p0, ds.x_train)
    np.testing.assert_allclose(whole[0, :, 0], direct, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [1, 50, 297, 1500, 10_000, 60_000])
@pytest.mark.parametrize("per_forward, max_call", [(32, 1024), (64, 1024), (7, 48), (16, 16)])
def test_call_sizes_cover_n_with_little_recomputation(n, per_forward, max_call):
    forward, call = _call_sizes(n, QueryLayout("patches", per_forward, max_call))
    calls = math.ceil(n / call)
    assert forward == min(per_forward, n) and forward <= call <= max(max_call, forward)
    assert call <= n  # every call slices inside the pool
    # Examples computed (whole forwards of every call) exceed N by under one example per
    # call plus one forward per call; calls of exactly max_call would waste up to a call.
    computed = calls * math.ceil(call / forward) * forward
    assert n <= computed < n + calls * (1 + forward)


def test_device_resident_pool_is_used_as_is(setup):
    ds, model, params = setup
    queries = query_set("cross1", False)
    host = query_logits(model, params, ds.x_train, queries)
    on_device = query_logits(model, params, jnp.asarray(ds.x_train), queries)
    np.testing.assert_array_equal(host, on_device)


def test_query_block_accuracies_count_the_identity_query(setup):
    ds, model, params = setup
    keep = keep_mask(0, 3, N, 0.5)
    queries = query_set("cross1", False)
    res = query_pass(
        model, params, ds.x_train, ds.y_train, keep, queries, ds.x_test[:30], ds.y_test[:30]
    )
    logits = query_logits(model, params, ds.x_train, queries)
    np.testing.assert_array_equal(res.logits, logits)
    test = query_logits(model, params, ds.x_test[:30], queries[:1])[:, :, 0]
    np.testing.assert_array_equal(res.test_logits, test)
    for m in range(3):
        pred = logits[m, :, 0].argmax(-1)
        ins = [pred[n] == ds.y_train[n] for n in range(N) if keep[m, n]]
        outs = [pred[n] == ds.y_train[n] for n in range(N) if not keep[m, n]]
        assert res.train_accuracy[m] == pytest.approx(np.mean(ins))
        assert res.out_accuracy[m] == pytest.approx(np.mean(outs))
        assert res.test_accuracy[m] == pytest.approx(np.mean(test[m].argmax(-1) == ds.y_test[:30]))


def test_per_model_labels_count_each_model_against_its_own(setup):
    """Canaries / label-DP: model m is scored against the labels it was trained on."""
    ds, model, params = setup
    keep = keep_mask(0, 3, N, 0.5)
    queries = query_set("identity", False)
    rng = np.random.default_rng(0)
    labels = np.stack([ds.y_train, (ds.y_train + 1) % 10, rng.integers(0, 10, N)])
    res = query_pass(model, params, ds.x_train, labels, keep, queries)
    pred = res.logits[:, :, 0].argmax(-1)
    for m in range(3):
        correct = pred[m] == labels[m]
        assert res.train_accuracy[m] == pytest.approx(correct[keep[m]].mean())
        assert res.out_accuracy[m] == pytest.approx(correct[~keep[m]].mean())
    shared = query_pass(model, params, ds.x_train, ds.y_train, keep, queries)
    assert shared.train_accuracy[0] == res.train_accuracy[0]
    assert shared.train_accuracy[1] != res.train_accuracy[1]


def test_bad_query_inputs(setup):
    ds, model, params = setup
    keep = keep_mask(0, 3, N, 0.5)
    shifted_first = (Query(False, 1, 0), Query(False, 0, 0))
    with pytest.raises(ValueError, match="first query must be the identity"):
        query_pass(model, params, ds.x_train, ds.y_train, keep, shifted_first)
    with pytest.raises(ValueError, match=r"keep_rows \(2, 50\)"):
        query_pass(model, params, ds.x_train, ds.y_train, keep[:2], query_set("identity", False))
    with pytest.raises(ValueError, match="queries is empty"):
        query_logits(model, params, ds.x_train, ())
    with pytest.raises(ValueError, match="examples_per_forward=0"):
        query_logits(
            model, params, ds.x_train, (Query(False, 0, 0),), layout=QueryLayout("lax", 0, 8)
        )
    with pytest.raises(ValueError, match="Unknown conv_impl 'fft'"):
        query_logits(
            model, params, ds.x_train, (Query(False, 0, 0),), layout=QueryLayout("fft", 8, 8)
        )


def test_auto_lowering_by_backend_and_input_size():
    assert query_conv_impl("auto", "cpu", (8, 8)) == "patches"
    assert query_conv_impl("auto", "cpu", (28, 28)) == "lax"
    assert query_conv_impl("auto", "gpu", (8, 8)) == "lax"
    assert query_conv_impl("patches", "gpu", (28, 28)) == "patches"
    assert query_conv_impl("auto", "cpu", (30,)) == "patches"  # tabular: no convolution
