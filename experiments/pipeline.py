r"""The whole job: train the shadow models, then attack them.

    python -m experiments.pipeline --workdir=runs/digits
    # trains 64 cnn32 models on sklearn digits, runs every attack, prints the table
    # (a few minutes on 2 CPU cores; numbers in docs/results.md)

Takes every flag of `experiments.train_shadows` and `experiments.attack`. Re-running it
skips models already in the store.
"""

from __future__ import annotations

from absl import app

from experiments import attack, flagdefs, train_shadows


def run_from_flags() -> None:
    train_shadows.run_from_flags()
    attack.run_from_flags()


main = flagdefs.main_for(run_from_flags, trains=True)


if __name__ == "__main__":
    app.run(main)
