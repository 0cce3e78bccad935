"""Benchmark binaries: how fast, how big, against what a user would otherwise run.

Each prints Markdown tables (recorded in docs/benchmarks.md with command and machine); none is
part of an audit. Run them from the repository root:

    python -m experiments.bench.throughput  # engine vs a one-model-at-a-time flax loop;
                                            # --settings=query|whole|memory run `query`,
                                            # `whole` (against `torch_peer`) and memory
    python -m experiments.bench.attacks     # attack scoring on a lazily generated store
    python -m experiments.bench.boundary --workdir=RUN  # the HopSkipJump label-only attack
    python -m experiments.bench.torch_peer --workdir=DIR  # the PyTorch loop `whole` spawns
    python -m experiments.bench.external_targets --workdir=RUN  # other frameworks' targets
                                            # audited against flax shadows
    bash scripts/device_check.sh            # all of it on one accelerator, in one command
                                            # (`device`; --size=tiny on a CPU)

`query` and `whole` are parts of `throughput` (its flags, its matmul peak); `tables` is the
Markdown helper they share.
"""
