r"""The peer users run today: a PyTorch loop that trains the same CNNs one at a time.

    pip install -e '.[bench]'   # torch (CPU), an optional extra: never a runtime dependency
    python -m experiments.bench.torch_peer --workdir=/tmp/peer --dataset=digits --num_models=32
    # trains 32 cnn32 models x 30 epochs on digits, then logits of every pool example under
    # the 5 queries; prints one line `phases: startup=...s compile=0.00s train=...s ...`

`experiments/bench/throughput.py --settings=whole` runs it beside `train_shadows`, as separate
processes, alternately. It follows the project's recipe so that both compute the same
thing: the same balanced 50% keep subsets (`lira_jax.data.membership.keep_mask`), dataset
and standardisation (`lira_jax.data.datasets`), per-dataset defaults
(`experiments/configs`: batch size, SGD momentum and weight decay, learning-rate warm-up
then cosine, shift augmentation), the same CNN (3 x [3x3 'SAME' conv -> ReLU -> 2x2 max
pool, skipped on maps smaller than 2x2], then a dense layer; widths 16/32/64 doubling), the
same number of steps per epoch (set by the model with the most IN examples), and then
the logits of every pool example under the same queries (reflect-padded shifts, mirror),
in batches of 256, plus the test set under the identity query and the identity query's
IN/OUT/test accuracies; the logits are written to `WORKDIR/logits.npy` ([M, N, A, C]).

What a careful PyTorch user does and this loop does too: batches gathered from tensors
held in memory (no DataLoader workers, which only add process start-up on data this
small), the random shift done batched on tensors (one reflect pad, one gather),
`torch.inference_mode()` for the queries, torch's default threads (one per core). What it
does not do: `torch.compile` (eager is what such scripts run) or channels-last layouts.

It imports no JAX: `datasets.py` and `membership.py` are loaded by file path (they use
numpy only), and the query set comes as names (`id_dy+0_dx+1`, as in the store's
`query_names`); when `--queries` is not given, the dataset's default query set is
resolved through `lira_jax.data.augment`, which does import JAX.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()  # noqa: E402 - the process's own clock starts before the imports

import importlib.util  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from experiments import configs  # noqa: E402


def _define_flags() -> None:
    """The binary's flags, defined only when it runs as a program (its functions are
    imported by the benchmark and the tests next to binaries with flags of the same names)."""
    flags.DEFINE_string("workdir", None, "Where logits.npy goes.", required=True)
    flags.DEFINE_string("dataset", "digits", "Dataset name (as train_shadows).")
    flags.DEFINE_string("data_dir", None, "Folder of IDX files (fashion_mnist_idx).")
    flags.DEFINE_integer("max_train", None, "Use the first N training examples.")
    flags.DEFINE_string("arch", None, "cnn16, cnn32 or cnn64.")
    flags.DEFINE_integer("num_models", None, "Models M.")
    flags.DEFINE_integer("epochs", None, "Training epochs.")
    flags.DEFINE_integer("seed", None, "Seed of the keep mask (and of this loop's RNG).")
    flags.DEFINE_list(
        "queries",
        None,
        "Query names, e.g. id_dy+0_dx+0,id_dy-1_dx+0 (default: the dataset's query set).",
    )
    flags.DEFINE_integer("threads", 0, "torch threads (0: torch's default).")


_QUERY_BATCH = 256
_CNN_WIDTHS = {"cnn16": 16, "cnn32": 32, "cnn64": 64}
_QUERY_NAME = re.compile(r"^(id|mirror)_dy([+-]\d+)_dx([+-]\d+)$")


def _load_by_path(name: str):
    """A numpy-only module of lira_jax/data without importing the package (and JAX)."""
    path = Path(__file__).resolve().parents[2] / "lira_jax" / "data" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_peer_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def parse_queries(names: list[str]) -> list[tuple[bool, int, int]]:
    """Query names (`id_dy+0_dx+1`, `mirror_dy-1_dx+0`) -> (mirror, dy, dx) triples."""
    out = []
    for name in names:
        match = _QUERY_NAME.match(name.strip())
        if not match:
            raise ValueError(
                f"query name {name!r} is not like id_dy+0_dx+1 or mirror_dy-1_dx+0 (the "
                "store's query_names)."
            )
        out.append((match[1] == "mirror", int(match[2]), int(match[3])))
    return out


def lr_at(step: int, peak: float, warmup: int, total: int) -> float:
    """optax.warmup_cosine_decay_schedule(0, peak, warmup, total) at `step`."""
    if step < warmup:
        return peak * step / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * 0.5 * (1.0 + math.cos(math.pi * t))


def build_cnn(torch, num_classes: int, width: int, in_channels: int, hw: tuple[int, int]):
    """The zoo's CNN (depth 3) in torch: conv 3x3 'SAME' -> ReLU -> 2x2 max pool, dense."""
    nn = torch.nn

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            h, w, c = hw[0], hw[1], in_channels
            self.convs, self.pools = nn.ModuleList(), []
            for i in range(3):
                self.convs.append(nn.Conv2d(c, width * 2**i, 3, padding=1))
                c = width * 2**i
                pool = h >= 2 and w >= 2
                self.pools.append(pool)
                if pool:
                    h, w = h // 2, w // 2
            self.fc = nn.Linear(c * h * w, num_classes)

        def forward(self, x):
            for conv, pool in zip(self.convs, self.pools, strict=True):
                x = torch.relu(conv(x))
                if pool:
                    x = torch.nn.functional.max_pool2d(x, 2)
            return self.fc(x.flatten(1))

    return CNN()


def shift_batch(torch, x, dy, dx, pad: int):
    """Shifts images [B, C, H, W] by per-example (dy, dx) (tensors [B] or ints), reflect
    padding by `pad`; what `lira_jax.data.augment.shift_image` does, batched."""
    b, _, h, w = x.shape
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    if isinstance(dy, int):
        return xp[:, :, pad - dy : pad - dy + h, pad - dx : pad - dx + w]
    rows = (pad - dy)[:, None] + torch.arange(h)  # [B, H]
    cols = (pad - dx)[:, None] + torch.arange(w)  # [B, W]
    out = xp[torch.arange(b)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)  # advanced indexing put the channel axis last


def run(opts, log=logging.info) -> dict:
    """Trains, queries and writes; returns the phase seconds and accuracies.

    Args:
      opts: the parsed flags (`absl.flags.FLAGS` after `_define_flags`).
      log: where progress lines go.
    """
    import torch

    if opts.threads:
        torch.set_num_threads(opts.threads)
    datasets, membership = _load_by_path("datasets"), _load_by_path("membership")
    config = configs.defaults_for(opts.dataset)
    for key in ("arch", "num_models", "epochs", "seed"):
        if getattr(opts, key) is not None:
            config[key] = getattr(opts, key)
    if config["arch"] not in _CNN_WIDTHS:
        raise ValueError(f"--arch={config['arch']!r}: the peer has {sorted(_CNN_WIDTHS)}.")
    ds = datasets.load_dataset(opts.dataset, opts.data_dir, opts.max_train)
    if opts.queries:
        queries = parse_queries(opts.queries)
    else:
        from lira_jax.data import augment  # imports JAX: only without --queries

        queries = [tuple(q) for q in augment.query_set(config["queries"], ds.mirror_ok)]
    if queries[0] != (False, 0, 0):
        raise ValueError(f"--queries: the first must be the identity, got {queries[0]}.")
    m_total, seed = config["num_models"], config["seed"]
    keep = membership.keep_mask(seed, m_total, ds.x_train.shape[0], config["pkeep"])
    bs, shift, mirror = config["batch_size"], config["augment_shift"], config["augment_mirror"]
    steps = max(1, math.ceil(int(keep.sum(1).max()) / bs))  # as engine.steps_per_epoch
    total = config["epochs"] * steps
    warmup = min(int(config["warmup_epochs"] * steps), total - 1)
    x = torch.from_numpy(np.ascontiguousarray(ds.x_train.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(ds.y_train.astype(np.int64))
    xt = torch.from_numpy(np.ascontiguousarray(ds.x_test.transpose(0, 3, 1, 2)))
    n, num_classes = x.shape[0], ds.num_classes
    width = _CNN_WIDTHS[config["arch"]]
    seconds = {"compile": 0.0, "train": 0.0, "query": 0.0}
    logits = np.empty((m_total, n, len(queries), num_classes), np.float32)
    test_logits = np.empty((m_total, xt.shape[0], num_classes), np.float32)
    log(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads: {m_total} "
        f"{config['arch']} x {config['epochs']} epochs on {ds.name} (N={n}, batch {bs}, "
        f"{steps} steps/epoch), {len(queries)} queries"
    )
    t_startup = time.perf_counter() - _T0
    for m in range(m_total):
        t = time.perf_counter()
        torch.manual_seed(seed * 1_000_003 + m)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + m)
        model = build_cnn(torch, num_classes, width, x.shape[1], tuple(x.shape[2:]))
        opt = torch.optim.SGD(
            model.parameters(),
            lr=config["learning_rate"],
            momentum=config["momentum"],
            weight_decay=config["weight_decay"],
        )
        own = torch.from_numpy(np.flatnonzero(keep[m]))
        step = 0
        model.train()
        for _ in range(config["epochs"]):
            order = own[torch.randperm(own.numel(), generator=gen)]
            for s in range(0, own.numel(), bs):
                idx = order[s : s + bs]
                xb = x[idx]
                if mirror:
                    flip = torch.rand(idx.numel(), generator=gen) < 0.5
                    xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
                if shift:
                    d = torch.randint(-shift, shift + 1, (2, idx.numel()), generator=gen)
                    xb = shift_batch(torch, xb, d[0], d[1], shift)
                for group in opt.param_groups:
                    group["lr"] = lr_at(step, config["learning_rate"], warmup, total)
                loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1  # the engine's schedule, too, counts only steps with examples
        seconds["train"] += time.perf_counter() - t
        t = time.perf_counter()
        model.eval()
        with torch.inference_mode():
            for a, (flip, dy, dx) in enumerate(queries):
                for s in range(0, n, _QUERY_BATCH):
                    xb = x[s : s + _QUERY_BATCH]
                    if flip:
                        xb = xb.flip(3)
                    if dy or dx:
                        xb = shift_batch(torch, xb, dy, dx, max(abs(dy), abs(dx)))
                    logits[m, s : s + _QUERY_BATCH, a] = model(xb).numpy()
            for s in range(0, xt.shape[0], _QUERY_BATCH):
                test_logits[m, s : s + _QUERY_BATCH] = model(xt[s : s + _QUERY_BATCH]).numpy()
        seconds["query"] += time.perf_counter() - t
    correct = logits[:, :, 0].argmax(-1) == ds.y_train
    train_acc = (correct & keep).sum(1) / keep.sum(1)
    out_acc = (correct & ~keep).sum(1) / np.maximum((~keep).sum(1), 1)
    test_acc = (test_logits.argmax(-1) == ds.y_test).mean(1)
    t = time.perf_counter()
    workdir = Path(opts.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    np.save(workdir / "logits.npy", logits)
    np.save(workdir / "test_logits.npy", test_logits)
    np.save(workdir / "keep.npy", keep)
    seconds["write"] = time.perf_counter() - t
    seconds["startup"] = t_startup
    log(
        f"train acc {train_acc.mean():.3f}, out acc {out_acc.mean():.3f}, test acc "
        f"{test_acc.mean():.3f} (means over {m_total} models)"
    )
    return {
        **seconds,
        "train_accuracy": float(train_acc.mean()),
        "out_accuracy": float(out_acc.mean()),
        "test_accuracy": float(test_acc.mean()),
    }


def phases_line(seconds: dict, total: float) -> str:
    """`phases: startup=1.20s compile=0.00s train=... total=...s`, the format of
    train_shadows's end-of-run line."""
    names = ("startup", "compile", "train", "query", "write")
    return "phases: " + " ".join(f"{k}={seconds[k]:.2f}s" for k in names) + f" total={total:.2f}s"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        result = run(flags.FLAGS)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    logging.info(phases_line(result, time.perf_counter() - _T0))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
