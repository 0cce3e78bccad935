r"""Attack-scoring benchmark on a synthetic store: is every attack vectorised?

    python -m experiments.benchmark_attacks                      # 256 x 50,000 x 18 x 10
    python -m experiments.benchmark_attacks --num_examples=5000  # a quicker look

The synthetic logits are generated lazily, one block of models at a time, from a seed (the
9 GB of a full-size store never exist at once), with a per-example membership effect of
random size, so attacks have something to find. Prints a Markdown table: seconds to
compute the signals, seconds per attack, peak memory.
"""

from __future__ import annotations

import resource
import time

import numpy as np
from absl import app, flags

from lira_jax.attacks import ATTACKS, evaluate_signals, needed_signals, resolve_attacks
from lira_jax.attacks.bank import signal_bank_from_logits
from lira_jax.data import keep_mask

_M = flags.DEFINE_integer("num_models", 256, "Models M.")
_N = flags.DEFINE_integer("num_examples", 50_000, "Examples N.")
_A = flags.DEFINE_integer("num_queries", 18, "Queries A.")
_C = flags.DEFINE_integer("num_classes", 10, "Classes C.")
_T = flags.DEFINE_integer("num_targets", 16, "Target models.")
_ATTACKS = flags.DEFINE_string("attacks", "all", f"Attacks to time: 'all' or from {list(ATTACKS)}.")
_BOOTSTRAP = flags.DEFINE_integer("num_bootstrap", 0, "Bootstrap resamples.")


class SyntheticLogits:
    """A lazy [M, N, A, C] float32 array of logits, reproducible from a seed.

    Example n has difficulty d_n and membership effect e_n; model m's logit for the true
    class is d_n + e_n·keep[m, n] + noise, the others are noise.
    """

    def __init__(
        self,
        keep: np.ndarray,
        labels: np.ndarray,
        num_queries: int,
        num_classes: int,
        seed: int = 0,
    ):
        self.keep, self.labels = keep, labels
        self.shape = (*keep.shape, num_queries, num_classes)
        self.ndim, self.dtype = 4, np.dtype(np.float32)
        rng = np.random.default_rng(seed)
        n = keep.shape[1]
        self.difficulty = rng.normal(2.0, 1.5, n).astype(np.float32)
        self.effect = rng.exponential(0.5, n).astype(np.float32)
        self.seed = seed

    def __getitem__(self, index) -> np.ndarray:
        models = np.arange(self.shape[0])[index]
        out = np.empty((len(models), *self.shape[1:]), np.float32)
        for i, m in enumerate(models):
            rng = np.random.default_rng([self.seed, int(m)])
            z = rng.standard_normal(self.shape[1:], dtype=np.float32)
            boost = self.difficulty + self.effect * self.keep[m]
            z[np.arange(self.shape[1]), :, self.labels] += boost[:, None]
            out[i] = z
        return out


def main(argv):
    del argv
    m, n, a, c = _M.value, _N.value, _A.value, _C.value
    names = resolve_attacks(_ATTACKS.value)
    keep = keep_mask(0, m, n, 0.5)
    labels = np.random.default_rng(1).integers(0, c, n)
    logits = SyntheticLogits(keep, labels, a, c)
    print(
        f"synthetic store: M={m} N={n} A={a} C={c} ({m * n * a * c * 4 / 2**30:.1f} GiB of "
        f"float32 logits, generated lazily), {_T.value} targets, attacks: {', '.join(names)}"
    )
    t0 = time.perf_counter()
    bank = signal_bank_from_logits(logits, labels, keep, signal_names=needed_signals(names))
    t_signals = time.perf_counter() - t0
    results, _ = evaluate_signals(bank, names, _T.value, num_bootstrap=_BOOTSTRAP.value)
    total = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("\n| step | seconds | AUC |\n|---|---:|---:|")
    print(f"| signals (incl. generating the logits) | {t_signals:.1f} | |")
    for name, res in results.items():
        auc = "undefined" if res.get("undefined") else f"{res['auc']:.3f}"
        print(f"| {name} | {res.get('seconds', float('nan')):.1f} | {auc} |")
    print(f"| **total** | {total:.1f} | |")
    print(f"\npeak memory (max RSS): {peak:.1f} GiB")


if __name__ == "__main__":
    app.run(main)
