r"""Attack-scoring benchmark on a synthetic store: is every attack vectorised?

    python -m experiments.bench.attacks                      # 256 x 50,000 x 18 x 10
    python -m experiments.bench.attacks --num_examples=5000  # a quicker look

The synthetic logits are generated lazily, one block of models at a time, from a seed (the
9 GB of a full-size store never exist at once), with a per-example membership effect of
random size, so attacks have something to find (see `SyntheticLogits`). Prints a Markdown
table: seconds to compute the signals, seconds per attack, peak memory, load average.
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np
from absl import app, flags

from experiments import flagdefs
from lira_jax.attacks import evaluate_signals, needed_signals, resolve_attacks
from lira_jax.attacks.bank import signal_bank_from_logits
from lira_jax.data import keep_mask

_M = flagdefs.NUM_MODELS
_N = flagdefs.NUM_EXAMPLES
_A = flags.DEFINE_integer("num_queries", 18, "Queries A.")
_C = flags.DEFINE_integer("num_classes", 10, "Classes C.")
_T = flagdefs.NUM_TARGETS
_ATTACKS = flagdefs.ATTACKS
_BOOTSTRAP = flagdefs.NUM_BOOTSTRAP
_JSON_OUT = flagdefs.JSON_OUT


class SyntheticLogits:
    """A lazy [M, N, A, C] float32 array of logits, reproducible from a seed.

    logit[m, n, a, c] = view[n, a, c] + noise[m, n, c] + (d_n + e_n·keep[m, n])·[c = y_n]:
    `view` ~ N(0, 0.5²) is what query a does to example n, the same for every model (drawn
    once); `noise` ~ N(0, 1) is model m's own take on example n, shared by its A queries
    (the augmentations of one image look alike to one model); d_n ~ N(2, 1.5²) is the
    example's difficulty and e_n ~ Exp(mean 0.5) its membership effect. Generating a model
    draws N·C normals (not N·A·C) and writes its logits once.
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
        self.view = 0.5 * rng.standard_normal((n, num_queries, num_classes), dtype=np.float32)
        self.seed = seed

    def __getitem__(self, index) -> np.ndarray:
        models = np.arange(self.shape[0])[index]
        n, _, c = self.shape[1:]
        out = np.empty((len(models), *self.shape[1:]), np.float32)
        rows = np.arange(n)
        for i, m in enumerate(models):
            noise = np.random.default_rng([self.seed, int(m)]).standard_normal(
                (n, c), dtype=np.float32
            )
            noise[rows, self.labels] += self.difficulty + self.effect * self.keep[m]
            np.add(self.view, noise[:, None, :], out=out[i])
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
    load0 = os.getloadavg()
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
    print(
        f"load average (1/5/15 min) at start {' / '.join(f'{v:.2f}' for v in load0)}, at end "
        f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    attacks = {
        name: {
            "seconds": res.get("seconds"),
            "auc": None if res.get("undefined") else res["auc"],
        }
        for name, res in results.items()
    }
    flagdefs.write_json_out(
        _JSON_OUT.value,
        {
            "shape": {"M": m, "N": n, "A": a, "C": c},
            "num_targets": _T.value,
            "signals_seconds": t_signals,
            "attacks": attacks,
            "total_seconds": total,
            "peak_rss_gib": peak,
        },
    )


if __name__ == "__main__":
    flagdefs.set_defaults(num_models=256, num_examples=50_000, num_targets=16, num_bootstrap=0)
    app.run(main)
