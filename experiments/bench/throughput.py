r"""Throughput of the multi-model engine against a one-model-at-a-time flax loop.

    python -m experiments.bench.throughput
    # CPU (default): digits 8x8 and digits upsampled to 28x28, cnn32; ~12-15 min on 2 cores.
    # Prints Markdown tables: model-epochs/s of the engine for M = 1, 8, 32, 128 models and
    # of a plain flax/optax loop training the same models one at a time, their ratio, the
    # engine's useful FLOP/s as a fraction of a measured 2048x2048 matmul, block memory;
    # a block-size sweep; a head-to-head of the two trainers run alternately; convolution
    # lowerings and model mappings; float32 vs bfloat16 accuracy.
    python -m experiments.bench.throughput --settings=cifar_synth  # GPU: CIFAR-shaped 32x32x3
    python -m experiments.bench.throughput --settings=query        # query pass vs training
    python -m experiments.bench.throughput --settings=whole        # whole processes vs PyTorch
    # `whole`: train_shadows and a PyTorch one-model-at-a-time loop (`bench/torch_peer.py`,
    # needs `pip install -e '.[bench]'`) as separate processes, alternately, per phase, on
    # digits (32 cnn32 x 30 epochs) and Fashion-MNIST (N=10,000, 8 cnn32 x 3 epochs), then
    # each process's training examples/s and query forwards/s with the FLOP/s they mean as
    # a share of this machine's matmul peak; ~15-25 min on 2 cores with 3 rounds.
    # `query`: forwards/s of the query pass per layout against the engine's training
    # examples/s, alternately; ~5-10 min.

Setup: like train_shadows, the binary splits the host CPU into one JAX device per core
before JAX starts (`sharding.use_cpu_cores_as_devices`); the engine shards models over
them, the flax loop runs on device 0 as a user's script would (its jitted step still uses
every core through XLA's intra-op threads).

Timing: compilation is separated (`Engine.compile`, a warm-up step per batch shape for the
flax loop) and reported on its own; the rest is wall-clock time of whole `Engine.train`
calls (init, every epoch, waiting for the device) and of the flax loop's epochs. Ratios
are measured side by side in one process; on a shared machine the load changes under
them, so the flax loop runs at the start and the end of each setting (the faster is the
reference: a conservative ratio) and a head-to-head table alternates the two trainers
and reports the median ratio. The load average is printed.

FLOP accounting (useful work only): the forward FLOPs of one example are counted from the
model (2 x the multiply-adds of every convolution and dense layer, the usual convention
that counts a 'SAME' convolution's border positions in full), x 3 for forward + backward,
x the number of examples each model trains on per epoch (its IN examples). The engine
gathers each model's own examples: `steps * batch_size` slots per model and epoch, its IN
examples first, then weight-0 padding (one model at a time, steps that are all padding are
skipped); no OUT example is ever forwarded. The padding share is printed and not counted.
XLA's count of one compiled step (`cost_analysis`, which counts a loop body once) is
printed as a check that a step costs ~3 x forward x batch_size, not x N.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from collections.abc import Sequence
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from flax.training import train_state

from experiments import flagdefs
from experiments.bench.tables import table
from lira_jax.data import augment, keep_mask, load_dataset
from lira_jax.models import get_model
from lira_jax.models.zoo import CNN
from lira_jax.train import engine as engine_lib
from lira_jax.train import query_logits, sharding

_SETTINGS = flags.DEFINE_list(
    "settings",
    ["auto"],
    "Input settings: digits8, digits28, cifar_synth, cifar_tiny; 'auto': digits8,digits28 on CPU, "
    "cifar_synth on GPU/TPU. Also 'query' (the query pass against training) and 'whole' "
    "(whole processes against the PyTorch loop), 'memory' (peak RSS of train_shadows as N, M, "
    "A vary).",
)
_WHOLE = flags.DEFINE_list(
    "whole_workloads", ["digits", "fashion"], "Workloads of --settings=whole: digits, fashion."
)
_FASHION_DIR = flags.DEFINE_string(
    "fashion_dir", None, "Folder of the Fashion-MNIST IDX files (default: Debian's)."
)
_QUERY_EXAMPLES = flags.DEFINE_integer(
    "query_examples", 4096, "Fashion-MNIST examples of --settings=query."
)
_LOGS = flags.DEFINE_string("whole_logs", None, "Keep the logs of --settings=whole here.")
_MODELS = flags.DEFINE_list(
    "models", None, "Numbers of models M of the sweep (default: per setting, e.g. 1,8,32,128)."
)
_BLOCKS = flags.DEFINE_list(
    "block_sizes",
    None,
    "Block sizes of the block-size sweep at the largest M (default: per setting).",
)
_EPOCHS = flags.DEFINE_integer(
    "timed_epochs",
    6,
    "Timed epochs per configuration (per-call costs such as init amortise over them, as "
    "over the 30 epochs of a real run).",
)
_BASELINE_MODELS = flags.DEFINE_integer(
    "baseline_models",
    2,
    "Models the one-at-a-time flax loop trains (its per-model cost "
    "does not depend on M, so a few suffice).",
)
_LOWERING_MODELS = flags.DEFINE_integer(
    "lowering_models", 8, "M of the convolution-lowering comparison (first setting only)."
)
_ROUNDS = flags.DEFINE_integer(
    "rounds", 3, "Head-to-head rounds (flax loop, engine alternately) per setting."
)
_PRECISION = flags.DEFINE_bool(
    "precision", True, "Compare float32 and bfloat16 compute on digits (accuracy)."
)
_PRECISION_MODELS = flags.DEFINE_integer("precision_models", 8, "Models per dtype.")
_PRECISION_EPOCHS = flags.DEFINE_integer("precision_epochs", 20, "Epochs of that comparison.")
_JSON_OUT = flagdefs.JSON_OUT


@dataclasses.dataclass(frozen=True)
class Setting:
    """One input shape and model of the benchmark.

    Attributes:
      name: setting name.
      arch: zoo CNN name (cnn16/cnn32/cnn64).
      num_examples: pool size N (each model trains on N/2).
      batch_size: per-model batch size.
      models: the M sweep.
      blocks: the block-size sweep (at max(models)).
      augment_shift: random shift of training.
    """

    name: str
    arch: str
    num_examples: int
    batch_size: int
    models: tuple[int, ...]
    blocks: tuple[int, ...]
    augment_shift: int = 1


SETTINGS = {
    # The real digits pool (1,500 train examples): 750 per model, 6 steps of 128.
    "digits8": Setting("digits8", "cnn32", 1500, 128, (1, 8, 32, 128), (8, 32, 128)),
    # Digits upsampled to MNIST size; 480 examples, ~240 per model (<= 256: 2 steps of 128).
    "digits28": Setting("digits28", "cnn32", 480, 128, (1, 8, 32), (8, 32)),
    # CIFAR-shaped synthetic data for accelerators: 4,096 per model, 16 steps of 256.
    "cifar_synth": Setting(
        "cifar_synth", "cnn64", 8192, 256, (1, 8, 32, 128, 256), (32, 128, 256), 2
    ),
    # The same inputs at a size a CPU test runs in seconds (the device check's tiny size).
    "cifar_tiny": Setting("cifar_tiny", "cnn16", 256, 64, (1, 4), (2, 4), 2),
}


def load_setting_data(setting: Setting) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train [N, H, W, C], y_train [N], x_test, y_test) for a setting; no downloads."""
    if setting.name.startswith("digits"):
        ds = load_dataset("digits", max_train=setting.num_examples)
        x, xt = ds.x_train, ds.x_test
        if setting.name == "digits28":
            resize = lambda a: np.asarray(
                jax.image.resize(a, (a.shape[0], 28, 28, 1), "bilinear"), np.float32
            )
            x, xt = resize(x), resize(xt)
        return x, ds.y_train, xt, ds.y_test
    ds = load_dataset("cifar_synth", max_train=setting.num_examples)
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test


# -- FLOPs and the machine's peak ------------------------------------------------------


def forward_flops_per_example(arch: str, num_classes: int, image_shape: Sequence[int]) -> int:
    """2 x multiply-adds of every convolution and dot of one forward pass of one example.

    Counted from the model's jaxpr with the plain convolution lowering: a convolution
    costs out_elements x (kh * kw * c_in), a dot out_elements x contracted size.
    """
    model = get_model(arch, num_classes, "lax")
    x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
    params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(x.shape)))
    jaxpr = jax.make_jaxpr(model.apply)(params, x)
    macs = 0
    for eqn in engine_lib._all_eqns(jaxpr.jaxpr):
        name = eqn.primitive.name
        out = int(np.prod(eqn.outvars[0].aval.shape))
        if name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            o_dim = eqn.params["dimension_numbers"].rhs_spec[0]
            groups = eqn.params["feature_group_count"]
            macs += out * int(np.prod(rhs)) // rhs[o_dim] // groups * groups
        elif name == "dot_general":
            (lc, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            macs += out * int(np.prod([lhs[d] for d in lc]))
    return 2 * macs


def xla_forward_flops(
    arch: str,
    num_classes: int,
    image_shape: Sequence[int],
    conv_impl: str = "lax",
    batch: int = 128,
) -> float:
    """XLA's `cost_analysis` FLOPs per example of a forward pass on `batch` examples.

    Per batch, not per single example: a lowering may have per-call work (the unrolled
    kernel of a small map is built once per call, not per example).
    """
    model = get_model(arch, num_classes, conv_impl)
    x = jnp.zeros((batch, *image_shape), jnp.float32)
    params = model.init(jax.random.PRNGKey(0), x[:1])
    cost = jax.jit(model.apply).lower(params, x).compile().cost_analysis()
    return float(cost["flops"]) / batch


def matmul_peak(n: int = 2048, reps: int = 30) -> float:
    """FLOP/s of the best of `reps` n x n float32 matmuls on the default device."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def peak_memory_mib() -> float:
    """Peak memory so far: device `peak_bytes_in_use` on accelerators, process max RSS on CPU."""
    dev = jax.local_devices()[0]
    if dev.platform != "cpu":
        stats = dev.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return stats["peak_bytes_in_use"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def block_memory_mib(compiled) -> float:
    """Device memory of one compiled block epoch: arguments + outputs + temporaries."""
    m = compiled.memory_analysis()
    if m is None:
        return float("nan")
    total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
    return (total - m.alias_size_in_bytes) / 2**20


# -- the two trainers -------------------------------------------------------------------


def train_config(setting: Setting, epochs: int, **overrides) -> engine_lib.TrainConfig:
    return engine_lib.TrainConfig(
        arch=setting.arch,
        num_classes=10,
        epochs=epochs,
        batch_size=setting.batch_size,
        learning_rate=0.05,
        warmup_epochs=1.0,
        augment_shift=setting.augment_shift,
        **overrides,
    )


@dataclasses.dataclass
class Result:
    trainer: str
    models: int
    block: int | str
    seconds: float
    model_epochs: float
    useful_flops: float
    compile_seconds: float
    block_mib: float = float("nan")
    peak_mib: float = float("nan")
    accuracy: float = float("nan")

    @property
    def rate(self) -> float:
        return self.model_epochs / self.seconds

    def to_json(self) -> dict:
        """The fields and the rate (model-epochs/s); NaN (not measured) becomes None."""
        out = {**dataclasses.asdict(self), "model_epochs_per_s": self.rate}
        return {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in out.items()}


def run_engine(
    setting: Setting,
    data,
    keep: np.ndarray,
    num_models: int,
    block: int | None,
    epochs: int,
    fwd_flops: int,
    *,
    conv_impl: str = "auto",
    model_chunk: int | None = None,
    label: str = "engine",
    compute_dtype: str = "float32",
    engine: engine_lib.Engine | None = None,
) -> tuple[Result, object]:
    """Trains models [0, num_models) with the engine in blocks of `block`; times it."""
    x, y = data[0], data[1]
    config = train_config(setting, epochs, conv_impl=conv_impl, compute_dtype=compute_dtype)
    if engine is None:  # steps per epoch: of the whole keep mask, as in a run
        steps = engine_lib.steps_per_epoch(keep, setting.batch_size)
        engine = engine_lib.Engine(config, x, y, steps, model_chunk=model_chunk)
    keep = keep[:num_models]
    if block is None:
        block = engine_lib.auto_models_per_step(config, x.shape[1:], num_models)
    block = min(block, num_models)
    starts = range(0, num_models, block)
    t = time.perf_counter()
    sizes = {min(block, num_models - s) for s in starts}
    compiled = {b: engine.compile(b) for b in sizes}
    for b in sizes:  # init, keys and unpadding of each block shape are compiled here too
        params, _ = engine.init(np.arange(b))
        jax.block_until_ready((engine.unpad(params, b), engine_lib.model_keys(0, np.arange(b), 1)))
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    params = []
    for s in starts:
        idx = np.arange(s, min(s + block, num_models))
        params.append(jax.block_until_ready(engine.train(idx, keep[idx])))
    seconds = time.perf_counter() - t
    useful = float(keep.sum()) * epochs * 3 * fwd_flops
    res = Result(
        label,
        num_models,
        block,
        seconds,
        num_models * epochs,
        useful,
        compile_s,
        block_memory_mib(compiled[max(sizes)]),
        peak_memory_mib(),
    )
    return res, (engine, params)


class FlaxCNN(nn.Module):
    """The zoo's CNN as a typical user writes it: `nn.Conv` + `nn.max_pool` (same shapes)."""

    num_classes: int
    width: int = 32
    depth: int = 3

    @nn.compact
    def __call__(self, x):
        for i in range(self.depth):
            x = nn.relu(nn.Conv(self.width * 2**i, (3, 3), padding="SAME")(x))
            if x.shape[1] >= 2 and x.shape[2] >= 2:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
        return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


def run_flax_loop(
    setting: Setting, data, keep: np.ndarray, num_models: int, epochs: int, fwd_flops: int
) -> Result:
    """The same models, one at a time, with a plain flax/optax loop: a jitted per-step
    `train_step`, batches gathered on the host in a Python loop over steps.

    Same architecture (parameter shapes), optimizer, schedule, augmentation, batch size,
    epochs and per-model training subsets as the engine.
    """
    x, y = data[0], data[1]
    zoo_model = get_model(setting.arch, 10)
    assert isinstance(zoo_model, CNN), "the flax loop mirrors the zoo's CNNs only"
    model = FlaxCNN(10, width=zoo_model.width, depth=zoo_model.depth)
    steps = engine_lib.steps_per_epoch(keep, setting.batch_size)
    keep = keep[:num_models]
    total = epochs * steps
    schedule = optax.warmup_cosine_decay_schedule(0.0, 0.05, min(steps, total - 1), total)
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(schedule, momentum=0.9))

    @jax.jit
    def train_step(state, xb, yb, key):
        xb = augment.random_augment(key, xb, setting.augment_shift, False)

        def loss_fn(params):
            logits = state.apply_fn(params, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    def new_state(m):
        params = model.init(jax.random.PRNGKey(m), jnp.asarray(x[:1]))
        return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)

    # Warm-up: compile every batch shape of the timed models (full, and each model's last
    # partial batch), so that timing measures training, not jit's recompilations.
    t = time.perf_counter()
    warm = new_state(0)
    shapes = {setting.batch_size} | {int(k) % setting.batch_size for k in keep.sum(1)}
    for b in sorted(shapes - {0}):
        warm, _ = train_step(warm, x[:b], y[:b], jax.random.PRNGKey(0))
    jax.block_until_ready(warm)
    compile_s = time.perf_counter() - t

    t = time.perf_counter()
    for m in range(num_models):
        state = new_state(m)
        rng = np.random.default_rng(m)
        key = jax.random.PRNGKey(1000 + m)
        own = np.flatnonzero(keep[m])
        for _ in range(epochs):
            order = rng.permutation(own)
            for s in range(0, len(order), setting.batch_size):
                idx = order[s : s + setting.batch_size]
                key, step_key = jax.random.split(key)
                state, loss = train_step(state, x[idx], y[idx], step_key)
        jax.block_until_ready(state.params)
    seconds = time.perf_counter() - t
    useful = float(keep.sum()) * epochs * 3 * fwd_flops
    return Result(
        "flax loop, one model at a time",
        num_models,
        1,
        seconds,
        num_models * epochs,
        useful,
        compile_s,
        peak_mib=peak_memory_mib(),
    )


# -- tables -----------------------------------------------------------------------------


def _or_oom(run, label: str, models: int, block: int) -> Result:
    """`run()`'s Result, or a row saying the configuration did not fit in device memory."""
    try:
        return run()[0]
    except Exception as e:  # XLA reports an allocation failure as a runtime error
        if "RESOURCE_EXHAUSTED" not in str(e) and "out of memory" not in str(e).lower():
            raise
        nan = float("nan")
        return Result(f"{label} (out of memory)", models, block, nan, nan, nan, nan)


def result_rows(results: list[Result], baseline: Result, peak: float) -> list[list[str]]:
    rows = []
    for r in results:
        if np.isnan(r.seconds):
            rows.append([r.trainer, str(r.models), str(r.block)] + ["-"] * 7)
            continue
        flops = r.useful_flops / r.seconds
        rows.append(
            [
                r.trainer,
                str(r.models),
                str(r.block),
                f"{r.rate:.2f}",
                f"{r.rate / baseline.rate:.1f}x",
                f"{flops / 1e9:.1f}",
                f"{100 * flops / peak:.1f}%",
                f"{r.compile_seconds:.1f}",
                "-" if np.isnan(r.block_mib) else f"{r.block_mib:.0f}",
                f"{r.peak_mib:.0f}",
            ]
        )
    return rows


HEADER = [
    "trainer",
    "M",
    "models/step",
    "model-epochs/s",
    "vs flax loop",
    "useful GFLOP/s",
    "of matmul peak",
    "compile s",
    "block MiB (XLA)",
    "peak MiB",
]


def benchmark_setting(
    setting: Setting,
    peak: float,
    epochs: int,
    out: list[str],
    *,
    models: Sequence[int],
    blocks: Sequence[int],
    baseline_models: int,
    lowering_models: int,
    rounds: int = 3,
) -> dict:
    """Runs the sweeps of one setting; appends Markdown to `out`; returns the results."""
    data = load_setting_data(setting)
    x = data[0]
    n = x.shape[0]
    m_max = max(max(models), max(blocks, default=1), lowering_models, 2)
    keep = keep_mask(0, m_max, n, 0.5)
    fwd = forward_flops_per_example(setting.arch, 10, x.shape[1:])
    xla_fwd = xla_forward_flops(setting.arch, 10, x.shape[1:])
    xla_fwd_engine = xla_forward_flops(setting.arch, 10, x.shape[1:], "auto", setting.batch_size)
    steps = engine_lib.steps_per_epoch(keep, setting.batch_size)
    n_in = keep.sum(1)

    # The flax loop runs first and last; the faster of the two is the reference, so that a
    # load change on a shared machine during the setting cannot inflate the ratios.
    first = run_flax_loop(setting, data, keep, baseline_models, epochs, fwd)
    results = []
    engine = None
    for m in models:
        r, (engine, _) = run_engine(setting, data, keep, m, None, epochs, fwd, engine=engine)
        results.append(r)
    m_top = max(models)
    sweep = []
    for b in blocks:
        if b <= m_top:
            r = _or_oom(
                lambda b=b: run_engine(setting, data, keep, m_top, b, epochs, fwd, engine=engine),
                "engine",
                m_top,
                b,
            )
            sweep.append(r)
    last = run_flax_loop(setting, data, keep, baseline_models, epochs, fwd)
    baseline = max(first, last, key=lambda r: r.rate)
    results.insert(0, baseline)
    # Head to head: the flax loop and the engine (auto block) alternately, `rounds` times;
    # the median of the per-round ratios is robust to a load that drifts during the run.
    m_h2h = min(32, m_top)
    pairs = []
    for _ in range(rounds):
        a = run_flax_loop(setting, data, keep, baseline_models, epochs, fwd)
        b, _ = run_engine(setting, data, keep, m_h2h, None, epochs, fwd, engine=engine)
        pairs.append((a.rate, b.rate))
    # Slots the engine computes per model and epoch: all `steps` of the run under a vmap;
    # one model at a time (CPU), steps that are all padding are skipped (`lax.cond`).
    if engine.model_chunk == 1:
        slots = float(np.mean(np.ceil(n_in / setting.batch_size))) * setting.batch_size
    else:
        slots = float(steps * setting.batch_size)
    config = train_config(setting, epochs)
    auto_block = engine_lib.auto_models_per_step(config, x.shape[1:], m_max)
    state_b, work_b = engine_lib.bytes_per_model(config, x.shape[1:])
    step_cost = engine.compile(1).cost_analysis()
    step_cost = step_cost.get("flops", float("nan")) if step_cost else float("nan")

    out.append(
        f"\n### {setting.name}: {x.shape[1:]} inputs, {setting.arch}, N={n}, "
        f"batch {setting.batch_size}, {epochs} timed epochs\n"
    )
    out.append(table(result_rows(results, baseline, peak), HEADER))
    out.append(
        f"\nFLOPs: forward {fwd / 1e6:.3f} MFLOP/example counted from the model (XLA "
        f"cost_analysis of the plain-conv forward, which skips border zeros: "
        f"{xla_fwd / 1e6:.3f}); x3 for forward+backward. Each model trains on "
        f"{n_in.mean():.0f} IN examples/epoch (of N={n}, at most {n_in.max()}: {steps} steps "
        f"of {setting.batch_size} per epoch for every model); the engine computes "
        f"{slots:.0f} example slots/model/epoch on average, so padding is "
        f"{100 * (1 - n_in.mean() / slots):.1f}% of its work (not counted as useful) and no "
        f"OUT example is forwarded. XLA's count of one compiled step of one model: "
        f"{step_cost / 1e9:.3f} GFLOP = {step_cost / (xla_fwd_engine * setting.batch_size):.2f}"
        f" x batch_size x XLA's count of the engine's forward ({xla_fwd_engine / 1e6:.3f} "
        f"MFLOP/example with its lowering, '{_resolved_conv()}', which on maps smaller than "
        f"the window skips padding taps), so a step trains on batch_size examples, not N (a "
        f"loop body is counted once). The flax loop ran at the "
        f"start and the end of this setting: {first.rate:.2f} and {last.rate:.2f} "
        f"model-epochs/s; the faster is the reference."
    )
    out.append(
        f"\nAuto block size here: {auto_block} models/step (estimated state "
        f"{state_b / 2**20:.2f} MiB/model, step working set <= {work_b / 2**20:.1f} MiB/model, "
        f"budget {engine_lib.default_memory_budget() / 2**30:.1f} GiB/device, "
        f"preferred {engine_lib.backend_defaults().models_per_device}/device)."
    )

    if sweep:
        out.append(f"\n#### {setting.name}: block size (models per step) at M={m_top}\n")
        out.append(table(result_rows(sweep, baseline, peak), HEADER))
    ratios = [e / f for f, e in pairs]
    rows = [[str(i + 1), f"{f:.2f}", f"{e:.2f}", f"{e / f:.1f}x"] for i, (f, e) in enumerate(pairs)]
    rows.append(["median", "", "", f"**{float(np.median(ratios)):.1f}x**"])
    out.append(
        f"\n#### {setting.name}: head to head, alternating (flax loop on {baseline_models} "
        f"models, engine on M={m_h2h}, auto block)\n"
    )
    out.append(
        table(
            rows,
            ["round", "flax loop model-epochs/s", "engine model-epochs/s", "engine / flax loop"],
        )
    )
    return {
        "baseline": baseline,
        "models": results[1:],
        "blocks": sweep,
        "data": data,
        "keep": keep,
        "fwd": fwd,
        "auto_block": auto_block,
        "head_to_head_median": float(np.median(ratios)),
    }


def benchmark_lowering(
    setting: Setting, ctx: dict, peak: float, epochs: int, m: int, out: list[str]
) -> list[Result]:
    """Convolution lowering x model mapping on one setting, M = m; returns the rows."""
    variants = [
        ("patches", 1, "lax.map, 1 at a time"),
        ("patches", 4, "lax.map over vmaps of 4"),
        ("patches", 0, "vmap (all models)"),
        ("lax", 1, "lax.map, 1 at a time"),
        ("lax", 0, "vmap (grouped conv)"),
    ]
    rows = []
    baseline = ctx["baseline"]
    for conv, chunk, mapping in variants:
        label = f"{conv}, {mapping}"
        run = lambda conv=conv, chunk=chunk, label=label: run_engine(
            setting,
            ctx["data"],
            ctx["keep"],
            m,
            m,
            epochs,
            ctx["fwd"],
            conv_impl=conv,
            model_chunk=chunk,
            label=label,
        )
        rows.append(_or_oom(run, label, m, m))
    out.append(
        f"\n#### {setting.name}: convolution lowering and model mapping, M={m} "
        f"(backend {jax.default_backend()}; auto picks conv "
        f"'{_resolved_conv()}', chunk {engine_lib.backend_defaults().model_chunk})\n"
    )
    out.append(table(result_rows(rows, baseline, peak), HEADER))
    return rows


def _resolved_conv() -> str:
    from lira_jax.models import resolve_conv_impl

    return resolve_conv_impl("auto")


def benchmark_precision(peak: float, out: list[str], models: int, epochs: int) -> None:
    """float32 vs bfloat16 compute on digits: accuracy (and speed, meaningful on GPUs)."""
    setting = SETTINGS["digits8"]
    data = load_setting_data(setting)
    x, y, xt, yt = data
    keep = keep_mask(0, max(models, 2), x.shape[0], 0.5)
    fwd = forward_flops_per_example(setting.arch, 10, x.shape[1:])
    rows = []
    identity = (augment.Query(False, 0, 0),)
    for dtype in ("float32", "bfloat16"):
        r, (engine, params) = run_engine(
            setting,
            data,
            keep,
            models,
            models,
            epochs,
            fwd,
            compute_dtype=dtype,
            label=dtype,
        )
        p = params[0]
        train_logits = query_logits(engine.model, p, x, identity)[:, :, 0]
        test_logits = query_logits(engine.model, p, xt, identity)[:, :, 0]
        in_acc = ((train_logits.argmax(-1) == y) & keep[:models]).sum(1) / keep[:models].sum(1)
        test_acc = (test_logits.argmax(-1) == yt).mean(1)
        rows.append(
            [
                dtype,
                f"{in_acc.mean():.4f} ± {in_acc.std():.4f}",
                f"{test_acc.mean():.4f} ± {test_acc.std():.4f}",
                f"{r.rate:.2f}",
            ]
        )
    out.append(
        f"\n### Mixed precision on digits 8x8 ({setting.arch}, {models} models, "
        f"{epochs} epochs; float32 params, compute dtype below; queries in float32)\n"
    )
    out.append(
        table(rows, ["compute dtype", "train (IN) accuracy", "test accuracy", "model-epochs/s"])
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    sharding.use_cpu_cores_as_devices()  # as train_shadows does; the flax loop uses device 0
    backend = jax.default_backend()
    names = _SETTINGS.value
    if names == ["auto"]:
        names = ["digits8", "digits28"] if backend == "cpu" else ["cifar_synth"]
    if names in (["query"], ["whole"], ["memory"]):
        return _run_process_benchmarks(names[0], backend)
    unknown = [s for s in names if s not in SETTINGS]
    if unknown:
        raise app.UsageError(f"Unknown settings {unknown}; valid: {list(SETTINGS)}.")
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    peak = matmul_peak()
    out = ["## Engine benchmark\n"]
    out.append(
        table(
            [
                [
                    "device",
                    f"{jax.local_devices()[0].device_kind} x {jax.local_device_count()} "
                    f"({backend})",
                ],
                ["CPU cores", str(os.cpu_count())],
                ["jax", jax.__version__],
                ["matmul peak (2048x2048 f32)", f"{peak / 1e9:.1f} GFLOP/s"],
                ["load average at start (1/5/15 min)", " / ".join(f"{v:.2f}" for v in load0)],
            ],
            ["", ""],
        )
    )
    summary = {
        "device": jax.local_devices()[0].device_kind,
        "devices": jax.local_device_count(),
        "backend": backend,
        "jax": jax.__version__,
        "matmul_peak_flops": peak,
        "auto_conv_impl": _resolved_conv(),
        "settings": {},
    }
    first = None
    for name in names:
        setting = SETTINGS[name]
        models = tuple(int(m) for m in _MODELS.value) if _MODELS.value else setting.models
        blocks = tuple(int(b) for b in _BLOCKS.value) if _BLOCKS.value else setting.blocks
        ctx = benchmark_setting(
            setting,
            peak,
            _EPOCHS.value,
            out,
            models=models,
            blocks=blocks,
            baseline_models=_BASELINE_MODELS.value,
            lowering_models=_LOWERING_MODELS.value,
            rounds=_ROUNDS.value,
        )
        first = first or (setting, ctx)
        summary["settings"][name] = {
            "flax_loop": ctx["baseline"].to_json(),
            "engine": [r.to_json() for r in ctx["models"]],
            "block_sweep": [r.to_json() for r in ctx["blocks"]],
            "auto_block": ctx["auto_block"],
            "head_to_head_median": ctx["head_to_head_median"],
        }
        print("\n".join(out), flush=True)
        out.clear()
    if _LOWERING_MODELS.value > 0:
        rows = benchmark_lowering(
            first[0], first[1], peak, _EPOCHS.value, _LOWERING_MODELS.value, out
        )
        summary["lowering"] = [r.to_json() for r in rows]
    if _PRECISION.value:
        benchmark_precision(peak, out, _PRECISION_MODELS.value, _PRECISION_EPOCHS.value)
    load1 = os.getloadavg()
    out.append(
        f"\nMatmul peak measured again at the end: {matmul_peak() / 1e9:.1f} GFLOP/s (the "
        f"tables use the one at the start). "
        f"Total {time.perf_counter() - t0:.0f} s; load average at end "
        f"{' / '.join(f'{v:.2f}' for v in load1)}; peak memory {peak_memory_mib():.0f} MiB."
    )
    print("\n".join(out), flush=True)
    summary["peak_mib"] = peak_memory_mib()
    flagdefs.write_json_out(_JSON_OUT.value, summary)


def _run_process_benchmarks(name: str, backend: str) -> None:
    """--settings=query, whole or memory (modules `query`, `whole` of this package)."""
    from experiments.bench import query, whole

    load0 = os.getloadavg()
    t0 = time.perf_counter()
    title = {"query": "Query pass", "whole": "Whole-process", "memory": "Memory"}[name]
    out = [f"## {title} benchmark\n"]
    out.append(
        f"Machine: {os.cpu_count()} CPU cores, {jax.local_device_count()} JAX {backend} "
        f"devices, jax {jax.__version__}; load average at start "
        f"{' / '.join(f'{v:.2f}' for v in load0)}."
    )
    if name == "memory":
        whole.memory_table(out, data_dir=_FASHION_DIR.value)
    elif name == "query":
        query.run(
            out,
            rounds=_ROUNDS.value,
            fashion_dir=_FASHION_DIR.value,
            fashion_examples=_QUERY_EXAMPLES.value,
        )
    else:
        unknown = sorted(set(_WHOLE.value) - set(whole.WORKLOADS))
        if unknown:
            raise app.UsageError(
                f"Unknown --whole_workloads {unknown}; valid: {list(whole.WORKLOADS)}."
            )
        logs = Path(_LOGS.value) if _LOGS.value else None
        whole.run(
            out,
            _WHOLE.value,
            rounds=_ROUNDS.value,
            data_dir=_FASHION_DIR.value,
            keep_logs=logs,
            matmul_peak=matmul_peak(),
            flops_per_example=forward_flops_per_example,
        )
    out.append(
        f"\nTotal {time.perf_counter() - t0:.0f} s; load average at end "
        f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())}."
    )
    print("\n".join(out), flush=True)


if __name__ == "__main__":
    app.run(main)
