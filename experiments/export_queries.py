r"""Writes the exact inputs a store's shadow models were queried with, for a model of your own.

    python -m experiments.export_queries --workdir=runs/digits --output=runs/digits/queries
    # -> queries/inputs.npy [N, A, *example_shape] float32, labels.npy [N], query_names.json

Run those inputs through your own model (any framework), save its outputs [N, A, C] in the
same order (.npy, .npz or a zarr array), and audit them against the store's shadows with
`python -m experiments.audit --workdir=RUN --target_logits=FILE`. The file formats are in
`lira_jax.store.exchange`.

The inputs are rebuilt from the store's config (the dataset, or your npz file, checked
against the sha256 the store recorded; `max_train`, the task, a mixture, DP-audit
canaries), standardised with the pool's statistics and put through each of the store's A
queries by the same function the query pass uses; the pool is checked against the store
(its size and labels) first.
They are written in chunks of `--chunk_examples`, so memory stays bounded for large N.
"""

from __future__ import annotations

import functools
from pathlib import Path

from absl import app, flags, logging

from experiments import flagdefs

_OUTPUT = flagdefs.OUTPUT
_CHUNK = flags.DEFINE_integer(
    "chunk_examples", 1024, "Examples whose queries are computed and written at once."
)


def export_queries(
    workdir: str | Path,
    output: str | Path | None = None,
    *,
    data_dir: str | None = None,
    chunk_examples: int = 1024,
    log=logging.info,
) -> Path:
    """Writes the query export of `workdir/store` (format: `lira_jax.store.exchange`).

    Args:
      workdir: run directory of a store written by `experiments.train_shadows` (it need not
        be complete: the inputs do not depend on the models).
      output: the export directory (default `workdir/queries`).
      data_dir: where tfds / IDX data live, as at training.
      chunk_examples: examples computed and written at once.
      log: progress lines.

    Returns:
      The export directory.

    Raises:
      StoreError: no store, or an output directory holding another store's export.
      DatasetError: the data cannot be read, or the npz file changed since training.
      ValueError: the rebuilt pool is not the store's (size or labels differ).
    """
    import jax
    import numpy as np

    from lira_jax import store as store_lib
    from lira_jax.data import augment
    from lira_jax.store import exchange
    from lira_jax.train.pool import load_store_dataset

    if chunk_examples < 1:
        raise ValueError(f"--chunk_examples={chunk_examples} must be >= 1.")
    workdir = Path(workdir)
    store = store_lib.open_store(workdir / "store")
    config = store.config
    ds = load_store_dataset(config, data_dir)
    if ds.x_train.shape[0] != store.num_examples or not np.array_equal(ds.y_train, store.labels()):
        raise ValueError(
            f"The pool rebuilt from {store.path}'s config ({ds.x_train.shape[0]} examples of "
            f"{config['dataset']!r}) is not the store's ({store.num_examples} examples, or other "
            "labels): the data changed since training. Export from the data the store was "
            "trained on."
        )
    queries = augment.query_set(config["queries"], ds.mirror_ok, tabular=ds.tabular)
    if augment.query_names(queries) != store.query_names:
        raise ValueError(
            f"The store's queries {store.query_names[:4]}... are not those of its config "
            f"({config['queries']!r}); the store was written by another lira_jax version."
        )
    views = jax.jit(functools.partial(augment.query_views, queries=queries))
    n = store.num_examples

    def chunks():
        for start in range(0, n, chunk_examples):
            stop = min(n, start + chunk_examples)
            yield start, np.asarray(views(ds.x_train[start:stop]))
            log(f"export: examples {stop}/{n}")

    out = Path(output) if output else workdir / "queries"
    exchange.write_query_export(
        out,
        chunks(),
        num_examples=n,
        query_names=store.query_names,
        example_shape=ds.image_shape,
        labels=store.labels(),
        meta={
            "store": str(store.path.resolve()),
            "config_fingerprint": store.metadata["config_fingerprint"],
            "dataset": config["dataset"],
        },
    )
    log(
        f"Wrote {out / 'inputs.npy'} [{n}, {len(queries)}, "
        f"{', '.join(map(str, ds.image_shape))}] float32, labels.npy and query_names.json"
    )
    return out


def run_from_flags() -> None:
    export_queries(
        flagdefs.WORKDIR.value,
        _OUTPUT.value,
        data_dir=flagdefs.DATA_DIR.value,
        chunk_examples=_CHUNK.value,
    )


main = flagdefs.main_for(run_from_flags)


if __name__ == "__main__":
    app.run(main)
