"""Whole processes, side by side: `train_shadows` against the PyTorch loop users run today.

Part of `python -m experiments.bench.throughput --settings=whole` (flags live there). Each round
runs `python -m experiments.train_shadows` and `python -m experiments.bench.torch_peer` (the
same models, recipe, keep subsets and queries; see `experiments/bench/torch_peer.py`) as
separate processes, one after the other, in alternating order, each into a fresh workdir.
The project's first round starts with an empty compilation cache (a user's first run);
later rounds reuse it (a re-run, or the next block/job of a run). Measured per process:
wall time from spawn to exit, peak RSS (`os.wait4`), and the phases each process reports
on its last line (`phases: startup=...s compile=...s train=...s query=...s write=...s`),
and CPU seconds (user + system): on a machine shared with other jobs, the share of the
cores a process gets changes its wall time, the work it does much less.
For a `train_shadows` that does not report phases yet, they are reconstructed from its
log: timestamps of its first line, its epoch lines and its "wrote models" lines, and
XLA's compile times (`JAX_LOG_COMPILES=1`: "Finished XLA compilation of ... in T sec",
each attributed to the phase it falls in); query and store write are then one number.
"startup & exit" is always the wall time not covered by the other phases (interpreter,
imports, data loading, process exit). The peer runs with torch's default threads and
`OMP_WAIT_POLICY=PASSIVE` (unless set): on a loaded machine spinning OpenMP threads would
slow it down, which is not what it is being compared for.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from experiments import configs
from experiments.bench.tables import table
from lira_jax.data import augment, keep_mask, load_dataset

REPO = Path(__file__).resolve().parents[2]
PHASES = ("compile", "train", "query", "write")


@dataclasses.dataclass(frozen=True)
class WholeWorkload:
    """One command both processes run: the dataset and the flags they share."""

    name: str
    dataset: str
    flags: tuple[str, ...]


WORKLOADS = {
    "digits": WholeWorkload("digits", "digits", ("--num_models=32", "--epochs=30")),
    "fashion": WholeWorkload(
        "fashion", "fashion_mnist_idx", ("--max_train=10000", "--num_models=8", "--epochs=3")
    ),
}


@dataclasses.dataclass
class ProcessRun:
    """One timed process. `phases` maps phase name -> seconds (see the module docstring)."""

    who: str
    wall: float
    peak_mib: float
    returncode: int
    phases: dict
    note: str = ""
    log: str = ""
    cpu: float = float("nan")

    @property
    def xla_compile(self) -> float | None:
        """Seconds XLA spent compiling or loading programs (`JAX_LOG_COMPILES` lines)."""
        times = [float(m[1]) for m in _COMPILED.finditer(self.log)]
        return sum(times) if times else None

    @property
    def cache_hits(self) -> int:
        return self.log.count("Persistent compilation cache hit")


def query_names(dataset: str, data_dir: str | None) -> list[str]:
    """The store's query names of `dataset`'s default query set (as train_shadows uses)."""
    ds = load_dataset(dataset, data_dir, 2)
    spec = configs.defaults_for(dataset)["queries"]
    return list(augment.query_names(augment.query_set(spec, ds.mirror_ok)))


@dataclasses.dataclass(frozen=True)
class Work:
    """The arithmetic both processes of a workload do (the same for both)."""

    train_examples: int  # IN examples x epochs, summed over models
    forwards: int  # query pass: pool x queries + test set, per model, summed over models
    forward_flops: int  # of one example (see `benchmark.forward_flops_per_example`)


def workload_work(
    w: WholeWorkload, data_dir: str | None, flops_per_example: Callable[..., int]
) -> Work:
    """The training examples, query forwards and forward FLOPs of workload `w`, from the
    run's defaults and flags (the same keep mask `train_shadows` draws).

    `flops_per_example(arch, num_classes, image_shape)`: `benchmark.forward_flops_per_example`
    (passed in: that module is `__main__` when the benchmark runs, and importing it again
    would define its flags twice)."""
    opts = dict(configs.defaults_for(w.dataset))
    for flag in w.flags:
        key, value = flag.removeprefix("--").split("=", 1)
        opts[key] = value
    ds = load_dataset(w.dataset, data_dir, int(opts["max_train"]) if "max_train" in opts else None)
    m, n = int(opts["num_models"]), ds.x_train.shape[0]
    keep = keep_mask(int(opts["seed"]), m, n, float(opts["pkeep"]))
    queries = augment.query_set(opts["queries"], ds.mirror_ok)
    return Work(
        train_examples=int(keep.sum()) * int(opts["epochs"]),
        forwards=m * (n * len(queries) + ds.x_test.shape[0]),
        forward_flops=flops_per_example(opts["arch"], ds.num_classes, ds.x_train.shape[1:]),
    )


def spawn(cmd: list[str], env: dict, who: str, logfile: Path) -> ProcessRun:
    """Runs `cmd` to completion; wall time, peak RSS of that process, its log."""
    start_wall = time.time()
    t = time.perf_counter()
    with open(logfile, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    text = logfile.read_text(errors="replace")
    phases, note = parse_phases(text, start_wall, wall)
    cpu = usage.ru_utime + usage.ru_stime
    return ProcessRun(who, wall, usage.ru_maxrss / 1024, proc.returncode, phases, note, text, cpu)


_LOG_TIME = re.compile(r"^[IWEF](\d{4}) (\d\d:\d\d:\d\d\.\d+) ")
_COMPILED = re.compile(r"Finished XLA compilation of .* in ([\d.e-]+) sec")


def _log_time(line: str, year: int) -> float | None:
    m = _LOG_TIME.match(line)
    if not m:
        return None
    stamp = datetime.datetime.strptime(f"{year}{m[1]} {m[2]}", "%Y%m%d %H:%M:%S.%f")
    return stamp.timestamp()


def parse_phases(text: str, start: float, wall: float) -> tuple[dict, str]:
    """Phase seconds of a process log (see the module docstring); (phases, note)."""
    lines = text.splitlines()
    reported = [ln for ln in lines if "phases:" in ln]
    if reported:
        items = re.findall(r"(\w+)=([\d.]+)s", reported[-1].split("phases:", 1)[1])
        phases = {k: float(v) for k, v in items if k not in ("total", "startup")}
        if "store_write" in phases:
            phases["write"] = phases.pop("store_write")
        phases["startup & exit"] = wall - sum(phases.get(k, 0.0) for k in PHASES)
        return phases, ""
    year = datetime.date.fromtimestamp(start).year
    stamped = [(t, ln) for ln in lines if (t := _log_time(ln, year)) is not None]
    first = next((t for t, ln in stamped if "Training " in ln and " models (" in ln), None)
    epochs = [t for t, ln in stamped if re.search(r"\) epoch \d+/\d+:", ln)]
    wrote = [t for t, ln in stamped if "wrote models [" in ln]
    if first is None or not epochs or not wrote:
        return {"startup & exit": wall}, "no phases found in the log"
    compiles = [(t, float(m[1])) for t, ln in stamped if (m := _COMPILED.search(ln))]

    def compiled(a: float, b: float) -> float:
        return sum(s for t, s in compiles if a <= t <= b)

    train_window = epochs[-1] - first
    query_window = wrote[-1] - epochs[-1]
    phases = {
        "compile": compiled(start, wrote[-1]),
        "train": train_window - compiled(first, epochs[-1]),
        "query": query_window - compiled(epochs[-1], wrote[-1]),
    }
    phases["startup & exit"] = wall - sum(phases.values())
    return phases, "from log timestamps; query includes the store write"


def run(
    out: list[str],
    names: list[str],
    *,
    rounds: int = 3,
    data_dir: str | None = None,
    keep_logs: Path | None = None,
    matmul_peak: float | None = None,
    flops_per_example: Callable[..., int] | None = None,
) -> dict:
    """Runs the workloads; appends Markdown to `out`; returns {workload: [ProcessRun]}.

    With `flops_per_example` (see `workload_work`) the report adds each process's training
    and query rates and the FLOP/s they mean, as a share of `matmul_peak` (FLOP/s of a
    large float32 matmul on this machine) when given."""
    results = {}
    scratch = Path(tempfile.mkdtemp(prefix="lira_whole_"))
    try:
        for name in names:
            w = WORKLOADS[name]
            # counted before any process runs: a mistake here must not cost the runs
            work = flops_per_example and workload_work(w, data_dir, flops_per_example)
            # --data_dir is Fashion-MNIST's directory; digits are bundled with scikit-learn
            extra = (f"--data_dir={data_dir}",) if data_dir and w.dataset != "digits" else ()
            shared = (f"--dataset={w.dataset}", *w.flags, *extra)
            cache = scratch / f"cache_{name}"
            queries = ",".join(query_names(w.dataset, data_dir))
            runs: list[ProcessRun] = []
            load0 = os.getloadavg()
            for r in range(rounds):
                order = ("project", "peer") if r % 2 == 0 else ("peer", "project")
                for who in order:
                    workdir = scratch / f"{name}_{who}_{r}"
                    env = {**os.environ, "PYTHONPATH": str(REPO)}
                    if who == "project":
                        module = "experiments.train_shadows"
                        env.update(LIRA_JAX_CACHE_DIR=str(cache), JAX_LOG_COMPILES="1")
                        flags = shared
                    else:
                        module = "experiments.bench.torch_peer"
                        flags = (*shared, f"--queries={queries}")
                        # libgomp's threads spin while they wait: on a machine shared with
                        # other jobs that made the peer 2-4x slower (docs/benchmarks.md); passive
                        # waiting costs it little on an idle machine. A user's setting wins.
                        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
                    cmd = [sys.executable, "-m", module, f"--workdir={workdir}", *flags]
                    res = spawn(cmd, env, who, scratch / f"{name}_{who}_{r}.log")
                    res.note = ("cold cache; " if who == "project" and r == 0 else "") + res.note
                    if res.returncode != 0:
                        raise RuntimeError(
                            f"{' '.join(cmd)} exited {res.returncode}:\n{res.log[-3000:]}"
                        )
                    runs.append(res)
                    shutil.rmtree(workdir, ignore_errors=True)
                    if keep_logs is not None:
                        keep_logs.mkdir(parents=True, exist_ok=True)
                        (keep_logs / f"{name}_{who}_{r}.log").write_text(res.log)
            load1 = os.getloadavg()
            results[name] = runs
            _report(out, w, shared, runs, rounds, load0, load1)
            if work:
                _report_rates(out, work, runs, matmul_peak)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _report_rates(out, work: Work, runs: list[ProcessRun], peak: float | None) -> None:
    """Training examples/s and query forwards/s of each process (medians over rounds), and
    the arithmetic rate they mean (training: 3 x forward FLOPs per example)."""
    rows = []
    for who, label in (("project", "train_shadows"), ("peer", "PyTorch loop")):
        mine = [r for r in runs if r.who == who]
        train_s = float(np.median([r.phases.get("train", np.nan) for r in mine]))
        query_s = float(np.median([r.phases.get("query", np.nan) for r in mine]))
        row = [label]
        for count, seconds, flops in (
            (work.train_examples, train_s, 3 * work.forward_flops),
            (work.forwards, query_s, work.forward_flops),
        ):
            rate = count / seconds
            gflops = rate * flops / 1e9
            share = f" ({rate * flops / peak:.0%} of peak)" if peak else ""
            row += [f"{rate:,.0f}", f"{gflops:.0f}{share}"]
        rows.append(row)
    out.append(
        f"\nRates (medians; training examples {work.train_examples:,}, query forwards "
        f"{work.forwards:,}, {work.forward_flops / 1e6:.1f} MFLOP per forward"
        + (f"; matmul peak {peak / 1e9:.0f} GFLOP/s" if peak else "")
        + "):\n"
    )
    out.append(
        table(
            rows,
            ["process", "training ex/s", "training GFLOP/s", "query forwards/s", "query GFLOP/s"],
        )
    )


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _report(out, w, shared, runs, rounds, load0, load1) -> None:
    out.append(
        f"\n#### Whole process: {w.name} (`{' '.join(shared)}`), {rounds} rounds, "
        "alternating order\n"
    )
    out.append(
        f"Load average {' / '.join(f'{v:.2f}' for v in load0)} at the start, "
        f"{' / '.join(f'{v:.2f}' for v in load1)} at the end.\n"
    )
    header = [
        "round",
        "process",
        "wall s",
        "CPU s",
        "startup & exit",
        *PHASES,
        "XLA compile s (cache hits)",
        "peak RSS MiB",
        "note",
    ]
    rows = []
    for i, res in enumerate(runs):
        label = "train_shadows" if res.who == "project" else "PyTorch loop"
        rows.append(
            [
                str(i // 2 + 1),
                label,
                f"{res.wall:.1f}",
                f"{res.cpu:.0f}",
                _fmt(res.phases.get("startup & exit")),
                *(_fmt(res.phases.get(k)) for k in PHASES),
                "-" if res.xla_compile is None else f"{res.xla_compile:.1f} ({res.cache_hits})",
                f"{res.peak_mib:.0f}",
                res.note,
            ]
        )
    out.append(table(rows, header))
    project = [r.wall for r in runs if r.who == "project"]
    peer = [r.wall for r in runs if r.who == "peer"]
    pairs = [(runs[i], runs[i + 1]) for i in range(0, len(runs), 2)]
    ratios = []
    for a, b in pairs:
        p, q = (a, b) if a.who == "project" else (b, a)
        ratios.append(q.wall / p.wall)
    warm = ratios[1:] or ratios
    cpu_ratio = float(np.median([r.cpu for r in runs if r.who == "peer"])) / float(
        np.median([r.cpu for r in runs if r.who == "project"])
    )
    out.append(
        f"\nPeer / project CPU seconds (user + system, medians): {cpu_ratio:.2f}x."
        f"\nPeer / project wall time per round: {', '.join(f'{r:.2f}x' for r in ratios)}; "
        f"first round (empty compilation cache) **{ratios[0]:.2f}x**, later rounds median "
        f"**{float(np.median(warm)):.2f}x**. Medians: train_shadows "
        f"{float(np.median(project)):.1f} s, PyTorch loop {float(np.median(peer)):.1f} s."
    )


def memory_table(
    out: list[str],
    *,
    arch: str = "mlp",
    examples: tuple[int, ...] = (15000, 60000),
    models: tuple[int, ...] = (2, 16),
    queries: tuple[str, ...] = ("cross1", "shift1"),
    data_dir: str | None = None,
) -> list[tuple]:
    """Peak RSS of whole `train_shadows` processes on Fashion-MNIST as N, M and A vary.

    One block of M models (`--models_per_step=M`), 1 epoch; a small `arch` keeps the runs
    short: the quantities that grow with N, M and A (the dataset, its copy on each device,
    the [M, N, A, C] logits) do not depend on the model.
    """
    rows, results = [], []
    scratch = Path(tempfile.mkdtemp(prefix="lira_memory_"))
    try:
        for spec in queries:
            for n in examples:
                for m in models:
                    workdir = scratch / f"{spec}_{n}_{m}"
                    extra = (f"--data_dir={data_dir}",) if data_dir else ()
                    cmd = [
                        sys.executable,
                        "-m",
                        "experiments.train_shadows",
                        f"--workdir={workdir}",
                        "--dataset=fashion_mnist_idx",
                        f"--max_train={n}",
                        f"--num_models={m}",
                        f"--models_per_step={m}",
                        f"--arch={arch}",
                        "--epochs=1",
                        f"--queries={spec}",
                        "--compile_cache=off",
                        *extra,
                    ]
                    env = {**os.environ, "PYTHONPATH": str(REPO)}
                    res = spawn(cmd, env, "project", scratch / f"{spec}_{n}_{m}.log")
                    if res.returncode != 0:
                        raise RuntimeError(
                            f"{' '.join(cmd)} exited {res.returncode}:\n{res.log[-3000:]}"
                        )
                    a = len(augment.query_set(spec, True))
                    logits_mib = m * n * a * 10 * 4 / 2**20
                    results.append((spec, n, m, a, res.peak_mib, logits_mib))
                    rows.append(
                        [
                            str(n),
                            str(m),
                            str(a),
                            f"{logits_mib:.0f}",
                            f"{res.peak_mib:.0f}",
                            f"{res.wall:.0f}",
                        ]
                    )
                    shutil.rmtree(workdir, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out.append(
        f"\n#### Peak RSS of train_shadows ({arch}, Fashion-MNIST 28x28, 1 epoch, one block)\n"
    )
    out.append(
        table(rows, ["N", "M (one block)", "A", "logits [M,N,A,C] MiB", "peak RSS MiB", "wall s"])
    )
    return results
