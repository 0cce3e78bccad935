"""The query pass: logits of every model of a block on every example under every query.

Design notes:
- One function gives the run loop everything it needs of a trained block (`query_pass`):
  the pool's logits [B, N, A, C], the test set's logits, and the identity query's IN,
  OUT and test accuracies, computed from those logits (no second pass over any data).
- Memory is bounded by a chunk size, not by N: examples are sliced from the replicated
  dataset on the device (`lax.dynamic_slice`, no host transfer, no padded copy) in calls
  of at most `examples_per_call`; inside a call, `lax.map` runs forward passes of
  `examples_per_forward` examples x A queries, so the activations alive at once are those
  of one such batch per device. The only array that grows with N is the result, copied
  into one preallocated host array as calls finish (the next call is already queued).
  Call sizes are balanced (N = 1,500 in calls of at most 1,024: two calls of 750); a last
  call or forward that would run past the end starts earlier instead and recomputes a
  few examples: one compiled shape, no padding.
- Layout and lowering per backend, measured (`experiments/bench/throughput.py
  --settings=query`; docs/design.md, "Query-pass layouts"): on CPU one model at a time
  (`lax.map`), the forward pass in the convolution lowering of `QUERY_DEFAULTS`; on GPUs
  the device's share of models vmapped. The lowering of the forward pass need not be the
  training lowering: both compute the same function of the same parameters (to float
  rounding).
- The models axis is sharded over the devices as in training (`jax.shard_map`);
  parameters of a block padded to a multiple of the device count are dropped after.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lira_jax.data import augment
from lira_jax.models import resolve_conv_impl
from lira_jax.train.engine import _resolve_chunk, map_models
from lira_jax.train.sharding import MESH_AXIS, models_mesh, padded_size

PyTree = Any

__all__ = [
    "QUERY_DEFAULTS",
    "QueryResult",
    "QueryLayout",
    "query_pass",
    "query_conv_impl",
    "query_layout",
    "query_logits",
]


@dataclasses.dataclass(frozen=True)
class QueryLayout:
    """How the query pass runs on one backend.

    Attributes:
      conv_impl: convolution lowering of the forward pass ("patches", "lax" or "auto").
      examples_per_forward: examples per forward pass (each under every query, so a
        forward sees examples_per_forward x A images).
      examples_per_call: most examples per compiled call (calls are balanced: N = 1,500
        runs as two calls of 750).
    """

    conv_impl: str
    examples_per_forward: int
    examples_per_call: int

    def validate(self) -> None:
        for name in ("examples_per_forward", "examples_per_call"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1.")
        resolve_conv_impl(self.conv_impl)


# Measured with `experiments/bench/throughput.py --settings=query` (docs/benchmarks.md).
# CPU "auto": XLA's convolution for inputs of 16x16 and more, "patches" below (see
# `query_conv_impl`). GPU/TPU values are unmeasured: big batches, the accelerator's lowering.
QUERY_DEFAULTS = {
    "cpu": QueryLayout("auto", 32, 1024),
    "gpu": QueryLayout("lax", 1024, 16384),
    "tpu": QueryLayout("lax", 1024, 16384),
}

# Inputs with at least this many pixels per channel are queried with XLA's convolution on
# CPU. Measured (2-core CPU, cnn32, forward only, one model at a time): on 28x28 inputs
# "lax" ran at ~1.6-1.9x "patches"; on 8x8 inputs at ~0.15-0.2x (XLA's CPU convolution
# inside a loop is slow on small maps). Between the two the threshold is not measured.
_CPU_LAX_MIN_PIXELS = 16 * 16


def query_layout(backend: str | None = None) -> QueryLayout:
    """The `QueryLayout` of `backend` (default: JAX's default backend)."""
    backend = backend or jax.default_backend()
    return QUERY_DEFAULTS.get(backend, QUERY_DEFAULTS["gpu"])


def query_conv_impl(impl: str, backend: str, image_shape: Sequence[int]) -> str:
    """The convolution lowering of the query pass: `impl`, or for "auto" by backend and
    input size ("lax" on CPU for inputs of 16x16 pixels and more, "patches" below; "lax"
    on accelerators)."""
    if impl != "auto":
        return resolve_conv_impl(impl)
    if backend == "cpu":
        pixels = math.prod(image_shape[:2]) if len(image_shape) >= 2 else 0  # 0: not images
        return "lax" if pixels >= _CPU_LAX_MIN_PIXELS else "patches"
    return "lax"


def _with_conv_impl(model: nn.Module, impl: str) -> nn.Module:
    """`model` with its convolutions lowered as `impl` (same parameters)."""
    if "conv_impl" in {f.name for f in dataclasses.fields(model)}:
        return model.clone(conv_impl=impl)
    return model


@functools.lru_cache(maxsize=64)
def _query_fn(
    model: nn.Module,
    queries: tuple[augment.Query, ...],
    mesh: Mesh,
    model_chunk: int | None,
    per_forward: int,
    per_call: int,
) -> Callable:
    """The jitted call (params, x_all, start) -> [B, per_call, A, C]: logits of examples
    [start, start + per_call) of the replicated `x_all`. One compilation per shape."""
    num_queries = len(queries)

    num_forwards = math.ceil(per_call / per_forward)
    tail = per_call - (num_forwards - 1) * per_forward  # rows the last forward adds
    # The last forward starts at per_call - per_forward: it recomputes a few rows when
    # per_forward does not divide per_call (one compiled forward shape, no padding).
    forward_starts = np.minimum(np.arange(num_forwards) * per_forward, per_call - per_forward)

    def local(params, x_all, start):
        xb = jax.lax.dynamic_slice_in_dim(x_all, start, per_call)

        def one_model(p):
            def forward(s):  # rows [s, s + f) of the call -> [f, A, classes]
                x = jax.lax.dynamic_slice_in_dim(xb, s, per_forward)
                views = jnp.concatenate([augment.apply_query(x, q) for q in queries])
                out = model.apply(p, views).astype(jnp.float32)
                return out.reshape(num_queries, per_forward, -1).transpose(1, 0, 2)

            out = jax.lax.map(forward, jnp.asarray(forward_starts, jnp.int32))
            head = out[:-1].reshape((-1,) + out.shape[2:])
            return jnp.concatenate([head, out[-1, per_forward - tail :]])

        return map_models(one_model, params, model_chunk)

    return jax.jit(
        jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(P(MESH_AXIS), P(), P()),
            out_specs=P(MESH_AXIS),
            check_vma=False,  # no collectives: nothing to check
        )
    )


def _call_sizes(n: int, layout: QueryLayout) -> tuple[int, int]:
    """(examples per forward, per call) for N = n examples.

    As many calls as the layout's call size needs, each just large enough to cover n in
    that many calls: at most one example per call is computed twice, plus the overlap of
    a call's last forward (under one forward). Calls of exactly the layout's size would
    recompute up to a whole call at the end: N = 1,500 in calls of 1,024 computed 2,048.
    """
    per_forward = min(layout.examples_per_forward, n)
    calls = math.ceil(n / max(per_forward, min(layout.examples_per_call, n)))
    return per_forward, max(per_forward, math.ceil(n / calls))


def query_logits(
    model: nn.Module,
    params: PyTree,
    x: np.ndarray | jax.Array,
    queries: Sequence[augment.Query],
    chunk: int | None = None,
    *,
    devices: Sequence[jax.Device] | None = None,
    model_chunk: int | None = None,
    layout: QueryLayout | None = None,
) -> np.ndarray:
    """Logits of every model on every example under every query.

    Args:
      model: the flax module (its convolutions are lowered as `layout.conv_impl`).
      params: stacked params, leading axis B.
      x: [N, H, W, C] examples: a host array, or a `jax.Array` already replicated over the
        devices (such as `Engine.x`), which is then used without a copy.
      queries: the fixed query set (A queries).
      chunk: most examples per compiled call (default: the layout's `examples_per_call`).
      devices: devices the models axis is sharded over (default: all local devices).
      model_chunk: models evaluated together per device (as in `Engine`; default: the
        backend's).
      layout: chunk sizes and lowering (default: `query_layout()` of the devices' backend).

    Returns:
      [B, N, A, C] float32 numpy array.

    Raises:
      ValueError: no queries, or a bad layout.
    """
    queries = tuple(queries)
    if not queries:
        raise ValueError("queries is empty; pass at least the identity query.")
    mesh = models_mesh(devices)
    backend = mesh.devices.flat[0].platform
    layout = layout or query_layout(backend)
    if chunk is not None:
        layout = dataclasses.replace(layout, examples_per_call=int(chunk))
    layout.validate()
    n = x.shape[0]
    b = jax.tree.leaves(params)[0].shape[0]
    per_forward, per_call = _call_sizes(n, layout)
    conv = query_conv_impl(layout.conv_impl, backend, x.shape[1:])
    run = _query_fn(
        _with_conv_impl(model, conv),
        queries,
        mesh,
        _resolve_chunk(model_chunk, backend),
        per_forward,
        per_call,
    )
    replicated = NamedSharding(mesh, P())
    if not (isinstance(x, jax.Array) and x.sharding.is_equivalent_to(replicated, x.ndim)):
        x = jax.device_put(np.asarray(x, np.float32), replicated)
    size = padded_size(b, mesh.devices.size)
    if size != b:  # pad with copies of the last model; dropped below
        params = jax.tree.map(
            lambda p: jnp.concatenate([p, jnp.repeat(p[-1:], size - b, axis=0)]), params
        )
    params = jax.device_put(params, NamedSharding(mesh, P(MESH_AXIS)))
    starts = [min(s, n - per_call) for s in range(0, n, per_call)]
    out = None
    pending = None  # one call in flight while the previous result is copied out
    for start in [*starts, None]:
        queued = None
        if start is not None:
            queued = (start, run(params, x, jax.device_put(np.int32(start), replicated)))
        if pending is not None:
            s, result = pending
            block = np.asarray(result)
            if out is None:
                out = np.empty((b, n) + block.shape[2:], np.float32)
            out[:, s : s + per_call] = block[:b]
        pending = queued
    return out


class QueryResult(NamedTuple):
    """What the run loop stores of a trained block.

    Attributes:
      logits: [B, N, A, C] float32, every pool example under every query.
      test_logits: [B, N_test, C] float32 under the identity query (None without a test set).
      train_accuracy: [B] identity-query accuracy on each model's IN examples.
      out_accuracy: [B] on its OUT examples (0 for a model without OUT examples).
      test_accuracy: [B] on the test set (None without a test set).
    """

    logits: np.ndarray
    test_logits: np.ndarray | None
    train_accuracy: np.ndarray
    out_accuracy: np.ndarray
    test_accuracy: np.ndarray | None


def query_pass(
    model: nn.Module,
    params: PyTree,
    x: np.ndarray | jax.Array,
    y: np.ndarray,
    keep_rows: np.ndarray,
    queries: Sequence[augment.Query],
    x_test: np.ndarray | jax.Array | None = None,
    y_test: np.ndarray | None = None,
    **kwargs,
) -> QueryResult:
    """Everything the run loop needs of a trained block, in one pass over the data.

    The first query must be the identity: the accuracies are those of its logits.

    Args:
      model, params, queries: as in `query_logits` (B stacked models, A queries).
      x: [N, H, W, C] the membership pool (host array, or replicated `jax.Array` such as
        `Engine.x`).
      y: [N] int labels of the pool, or [B, N] labels each model was trained on (canary
        flips, randomized response: the accuracies are against what each model saw).
      keep_rows: [B, N] bool, the block's rows of the keep mask.
      x_test, y_test: optional test set ([N_test, H, W, C], [N_test]).
      **kwargs: `devices`, `model_chunk`, `layout` of `query_logits`.

    Returns:
      A `QueryResult`.

    Raises:
      ValueError: the first query is not the identity, or shapes disagree.
    """
    queries = tuple(queries)
    if not queries or queries[0] != augment.Query(False, 0, 0):
        raise ValueError(
            f"queries[0]={queries[0] if queries else None}: the first query must be the "
            "identity Query(False, 0, 0) (the accuracies are computed from it); use "
            "augment.query_set(...), which puts it first."
        )
    b = jax.tree.leaves(params)[0].shape[0]
    keep_rows = np.asarray(keep_rows, bool)
    if keep_rows.shape != (b, x.shape[0]) or np.shape(y) not in {(x.shape[0],), keep_rows.shape}:
        raise ValueError(
            f"keep_rows {keep_rows.shape} and y {np.shape(y)} must be [B, N]=[{b}, "
            f"{x.shape[0]}] and [N] or [B, N]: the block's rows of the keep mask and the pool "
            "labels (shared, or per model)."
        )
    if (x_test is None) != (y_test is None):
        raise ValueError("Pass both x_test and y_test, or neither.")
    logits = query_logits(model, params, x, queries, **kwargs)
    correct = logits[:, :, 0].argmax(-1) == np.asarray(y)
    train_acc = (correct & keep_rows).sum(1) / np.maximum(keep_rows.sum(1), 1)
    out_acc = (correct & ~keep_rows).sum(1) / np.maximum((~keep_rows).sum(1), 1)
    test_logits = test_acc = None
    if x_test is not None:
        test_logits = query_logits(model, params, x_test, queries[:1], **kwargs)[:, :, 0]
        test_acc = (test_logits.argmax(-1) == np.asarray(y_test)).mean(1)
    return QueryResult(logits, test_logits, train_acc, out_acc, test_acc)
