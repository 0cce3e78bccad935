r"""Checks a run's store: format, completeness, every block against its checksum, and the
saved parameters (train_shadows --save_params) against theirs.

    python -m experiments.verify --workdir=runs/digits
    # prints "OK: ..." and exits 0, or lists every missing/corrupt block with the command
    # that recomputes it (and every damaged array written at creation: keep, labels,
    # canaries, per-model labels, DP-audit canaries), and exits 1.

Only reads (and never repairs): fixing means deleting the bad blocks' records and
re-running train_shadows for them, which this prints.
"""

from __future__ import annotations

from pathlib import Path

from absl import app

from experiments import flagdefs
from lira_jax import store as store_lib


def verify_run(workdir: str | Path) -> list[str]:
    """Returns the problems of `workdir/store` (empty when it is complete and intact).

    Raises:
      StoreError: there is no readable store (wrong path, unknown format version).
    """
    store = store_lib.open_store(Path(workdir) / "store")
    problems = []
    blocks = store.path / "_blocks"
    for a, b, why in store.corrupt_blocks():
        problems.append(
            f"corrupt block {a}:{b} ({why}): delete {blocks}/m{a:06d}-{b:06d}.json, then run "
            f"train_shadows with the run's flags and --model_range={a}:{b}"
        )
    for name, why in store.corrupt_arrays():
        problems.append(
            f"corrupt array {name} ({why}): it was written when the store was created and "
            "cannot be recomputed in place; re-create the store with the run's flags in a new "
            "--workdir"
        )
    for a, b in store.missing_ranges():
        problems.append(
            f"missing models {a}:{b}: run train_shadows with the run's flags and "
            f"--model_range={a}:{b}"
        )
    problems.extend(_params_check(workdir, store)[0])
    return problems


def _params_check(workdir: str | Path, store: store_lib.LogitStore) -> tuple[list[str], int]:
    """(problems, blocks with saved params); imports JAX only when params were saved."""
    if not any("params_sha256" in r.get("extra", {}) for r in store.records()):
        return [], 0
    from lira_jax.train import params as params_lib

    return params_lib.params_problems(workdir)


def run_from_flags() -> None:
    flagdefs.quiet_checkpoint_logs()  # reading saved params: orbax's warnings only
    workdir = flagdefs.WORKDIR.value
    problems = verify_run(workdir)
    if problems:
        print(f"{len(problems)} problem(s) in {Path(workdir) / 'store'}:")
        print("\n".join(f"  - {p}" for p in problems))
        raise SystemExit(1)
    store = store_lib.open_store(Path(workdir) / "store")
    _, saved = _params_check(workdir, store)
    params = f"; saved parameters of {saved} block(s) match theirs" if saved else ""
    print(f"OK: {store} — every block matches its checksum{params}.")


main = flagdefs.main_for(run_from_flags)


if __name__ == "__main__":
    app.run(main)
