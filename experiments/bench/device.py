r"""The accelerator check: what the project needs to know from a GPU, in one command.

    bash scripts/device_check.sh                  # on the device machine, ~8 min
    bash scripts/device_check.sh --size=tiny      # the same stages at CPU-test size, ~1-2 min
    python -m experiments.bench.device --out=DIR [--size=tiny --budget_s=480 --stages=...]

(`scripts/device_check.sh` installs the carried wheels offline, then runs this binary.)
The stages, in order, each a separate process of this interpreter (`sys.executable`):

1. `devices`: which JAX backend and devices the interpreter sees, the versions of the
   packages the project uses, which optional heavy packages the binaries imported
   (tensorflow_datasets, torch, zarr, tensorflow: none is needed here), and whether the
   carried packages (dp_accounting, jax_privacy) import.
2. `throughput`: `experiments.bench.throughput --settings=cifar_synth` (cnn64 on CIFAR-
   shaped inputs): the engine against a one-model-at-a-time flax loop, model-epochs/s, FLOP/s
   against the matmul peak, block and peak memory, the automatic block size, the
   convolution lowerings and model mappings (size `device`: M = 1 and 256, blocks of 64 and
   the automatic one, 2 timed epochs, 1 head-to-head round, lowerings at M = 8).
3. `train_float32`: `experiments.train_shadows` on `cifar_synth` (CIFAR-10's 50,000 x
   32 x 32 x 3, `lira_jax.data.synthetic`), 256 cnn32 models, 4 epochs (`--train_epochs`),
   18 queries (shift1 with mirrors), the automatic block size; every phase timed (the
   run's own `phases:` line: startup, compile, train, query, store_write), peak host
   memory, the per-model accuracies of its block records.
4. `train_bfloat16`: the same models (same config, seed, keep masks) with
   `--compute_dtype=bfloat16`, in a workdir of its own; then, in this process, the two
   are compared: accuracies, phase times, and on the first 8 models the agreement of the
   two stores' identity-query predictions and the largest logit difference.
5. `attack`: `experiments.attack` on the float32 run (16 targets, every attack it has the
   inputs for): AUC and TPR per attack, seconds per attack.
6. `attack_scoring`: `experiments.bench.attacks` at 256 x 50,000 x 18 x 10 (synthetic
   logits, 16 targets).

Budget: `--budget_s` (default: 480 s for `device`, 900 s for `tiny`) bounds the whole
check. Stage i may run for max(cap_i, left - sum of the caps of the stages after it),
never more than what is left (`CAPS`): a stage that ends early leaves its time to the
later ones, a slow one cannot starve them of their caps. A stage past its time is killed
(its process group) and recorded as `timeout`; a stage whose input failed is `skipped`;
the next stage runs in every case. A training stage first removes its workdir, so a
second check in the same `--work` trains again.

Output, rewritten after every stage (a check killed from outside still leaves the stages
done): `OUT/device_check.json`, `OUT/device_check.md` (the summary table, the goal, the
float32/bfloat16 table, then each stage's own tables) and `OUT/device_check.log` (the
stages' logs, each cut to its last `LOG_KEEP` characters). The JSON: `{"size", "budget_s",
"wall_s", "finished", "install": {"rc", "log"}, "stages": {name: {"status": "ok" | "failed"
| "timeout" | "skipped", "command", "seconds", "returncode", "peak_rss_mib", "error",
"result"}}, "comparison": {...}, "goal": {...}}`; `result` holds what the stage measured
(the throughput and attack-scoring binaries' `--json_out`, the run's phases and
accuracies, attacks.json).

The goal to compare with: 256 CIFAR-10-sized CNN shadow models trained and queried in
<= 5 minutes on one H100-class GPU. `goal` reports, from the float32 (and bfloat16) run,
the seconds per epoch of all 256 models, the fixed costs (startup, compile, query, store
write) and how many epochs fit in 300 s with them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags

from experiments.bench.tables import table

REPO = Path(__file__).resolve().parents[2]
GOAL_SECONDS = 300.0
LOG_KEEP = 20_000
STAGES = ("devices", "throughput", "train_float32", "train_bfloat16", "attack", "attack_scoring")
# Optional packages that no stage needs: importing one would make the offline install fail.
HEAVY_OPTIONAL = ("tensorflow_datasets", "tensorflow", "torch", "zarr")
PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "tensorstore",
    "numpy",
    "scipy",
    "absl-py",
    "scikit-learn",
    "matplotlib",
    "chex",
    "dp-accounting",
    "jax-privacy",
    "pydantic",
)

_SIZE = flags.DEFINE_enum(
    "size", "device", ["device", "tiny"], "device: the accelerator's sizes; tiny: a CPU test's."
)
_OUT = flags.DEFINE_string("out", None, "Folder of device_check.json, .md and .log.")
_WORK = flags.DEFINE_string(
    "work",
    None,
    "Scratch folder of the runs (~20 GB at the device size; default: a new temporary folder, "
    "never under --out, whose files the device tool brings back).",
)
_BUDGET = flags.DEFINE_float(
    "budget_s", None, "Seconds for all stages (default: 480 for device, 900 for tiny)."
)
_ONLY = flags.DEFINE_list("stages", list(STAGES), f"Stages to run, of {list(STAGES)}.")
_TRAIN_EPOCHS = flags.DEFINE_integer(
    "train_epochs", None, "Epochs of the two training stages (default: 4 device, 1 tiny)."
)
_TRAIN_MODELS = flags.DEFINE_integer(
    "train_models", None, "Models of the two training stages (default: 256 device, 4 tiny)."
)
_INSTALL_LOG = flags.DEFINE_string("install_log", None, "The wheel install's log (the script's).")
_INSTALL_RC = flags.DEFINE_string("install_rc", "none", "The wheel install's exit status.")


@dataclasses.dataclass(frozen=True)
class Size:
    """The arguments of every stage at one size.

    Attributes:
      throughput: flags of experiments.bench.throughput.
      train: flags shared by both training runs (the dataset's defaults fill the rest).
      epochs, models: of the training runs (flags `--train_epochs`, `--train_models`).
      attack: flags of experiments.attack (besides --workdir).
      attack_scoring: flags of experiments.bench.attacks.
      budget_s: default of --budget_s.
      caps: seconds each stage is sure to get (see the module docstring).
    """

    throughput: tuple[str, ...]
    train: tuple[str, ...]
    epochs: int
    models: int
    attack: tuple[str, ...]
    attack_scoring: tuple[str, ...]
    budget_s: float
    caps: dict


SIZES = {
    "device": Size(
        throughput=(
            "--settings=cifar_synth",
            "--models=1,256",
            "--block_sizes=64",
            "--timed_epochs=2",
            "--rounds=1",
            "--baseline_models=2",
            "--lowering_models=8",
            "--noprecision",
        ),
        train=("--dataset=cifar_synth", "--arch=cnn32", "--batch_size=256"),
        epochs=4,
        models=256,
        attack=("--num_targets=16",),
        attack_scoring=(),  # its defaults: 256 x 50,000 x 18 x 10, 16 targets
        budget_s=480.0,
        # The float32 run is the goal's measurement: the largest share. Its query pass
        # (256 x 50,000 x 18 forwards) costs about 12 training epochs of its 256 models.
        caps=dict(
            devices=20,
            throughput=90,
            train_float32=150,
            train_bfloat16=110,
            attack=60,
            attack_scoring=50,
        ),
    ),
    "tiny": Size(
        throughput=(
            "--settings=cifar_tiny",
            "--models=4",
            "--block_sizes=4",
            "--timed_epochs=1",
            "--rounds=1",
            "--baseline_models=1",
            "--lowering_models=0",
            "--noprecision",
        ),
        train=("--dataset=cifar_synth", "--arch=cnn16", "--batch_size=32", "--max_train=128"),
        epochs=1,
        models=4,
        attack=("--num_targets=2",),
        attack_scoring=(
            "--num_models=8",
            "--num_examples=200",
            "--num_queries=18",
            "--num_targets=2",
        ),
        # Generous: a CPU shared with other jobs can be several times slower than idle.
        budget_s=900.0,
        caps=dict(
            devices=60,
            throughput=240,
            train_float32=180,
            train_bfloat16=180,
            attack=120,
            attack_scoring=120,
        ),
    ),
}

# Run in the `devices` stage: what the interpreter sees once the binaries are imported.
_DEVICES_PROGRAM = r"""
import importlib, importlib.metadata as md, json, sys
import jax
for name in ("experiments.train_shadows", "experiments.attack", "experiments.bench.throughput",
             "experiments.bench.attacks", "lira_jax.train.accounting"):
    importlib.import_module(name)
versions = {}
for p in sys.argv[2].split(","):
    try:
        versions[p] = md.version(p)
    except md.PackageNotFoundError:
        versions[p] = None
heavy = sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[1].split(","))
importable = {}  # the carried packages, which the binaries import only when used
for name in ("dp_accounting", "jax_privacy"):
    try:
        importlib.import_module(name)
        importable[name] = True
    except Exception as e:
        importable[name] = repr(e)[:300]
devices = jax.devices()
stats = devices[0].memory_stats() if devices[0].platform != "cpu" else None
memory = (stats or {}).get("bytes_limit")
print("DEVICES_JSON " + json.dumps({
    "memory_gib": memory and memory / 2**30,
    "backend": jax.default_backend(),
    "devices": [str(d) for d in devices],
    "device_kind": devices[0].device_kind,
    "python": sys.version.split()[0],
    "executable": sys.executable,
    "versions": versions,
    "heavy_optional_imported": heavy,
    "importable": importable,
}))
"""


@dataclasses.dataclass
class StageRun:
    """One stage's process: exit status (None: killed at its deadline), times, log."""

    returncode: int | None
    seconds: float
    peak_rss_mib: float
    log: str


def run_stage(argv: list[str], log_path: Path, timeout: float, env: dict) -> StageRun:
    """Runs `sys.executable argv...` from the repository root, output to `log_path`.

    The process leads a session of its own, so at `timeout` its whole group is killed
    (children too). Peak RSS is the process's own (`wait4`)."""
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        returncode, usage = None, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                returncode = os.waitstatus_to_exitcode(status)
                break
            if time.perf_counter() - t0 > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                _, _, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.1)
    proc.returncode = -9 if returncode is None else returncode  # reaped here, not by Popen
    text = log_path.read_text(errors="replace")
    return StageRun(returncode, time.perf_counter() - t0, usage.ru_maxrss / 1024, text)


def stage_timeout(name: str, left: float, caps: dict, order: list[str]) -> float:
    """max(cap, left - caps of the later stages), at most `left` (module docstring)."""
    later = sum(caps[s] for s in order[order.index(name) + 1 :])
    return min(left, max(caps[name], left - later))


_PHASES = re.compile(r"phases: (.*)$", re.M)


def parse_phases(log: str) -> dict[str, float]:
    """The last `phases: startup=1.0s compile=… total=…s` line of a run's log, as seconds."""
    lines = _PHASES.findall(log)
    if not lines:
        return {}
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)s", lines[-1])}


def run_summary(workdir: Path, log: str, epochs: int) -> dict:
    """What a training stage measured: phases, blocks, per-model accuracies (records)."""
    records = [
        json.loads(p.read_text()) for p in sorted((workdir / "store" / "_blocks").glob("m*.json"))
    ]
    acc = {}
    for key in ("train_accuracy", "out_accuracy", "test_accuracy"):
        values = [a for r in records for a in r.get("extra", {}).get(key, [])]
        acc[key] = float(np.mean(values)) if values else None
    phases = parse_phases(log)
    return {
        "phases": phases,
        "epochs": epochs,
        "models": sum(r["stop"] - r["start"] for r in records),
        "blocks": [[r["start"], r["stop"]] for r in records],
        "seconds_per_epoch": phases["train"] / epochs if "train" in phases else None,
        **acc,
    }


def compare_runs(a: Path, b: Path, models: int = 8) -> dict:
    """Identity-query predictions of the first `models` models of two stores."""
    from lira_jax import store as store_lib

    sa, sb = store_lib.open_store(a / "store"), store_lib.open_store(b / "store")
    names = list(sa.query_names)
    q = next((i for i, n in enumerate(names) if n.startswith("id_")), 0)
    idx = list(range(min(models, sa.num_models)))
    la = np.asarray(sa.read_logits(models=idx))[:, :, q]
    lb = np.asarray(sb.read_logits(models=idx))[:, :, q]
    return {
        "models_compared": len(idx),
        "query": names[q],
        "prediction_agreement": float((la.argmax(-1) == lb.argmax(-1)).mean()),
        "max_abs_logit_difference": float(np.abs(la - lb).max()),
    }


def goal(summary: dict) -> dict:
    """Seconds per epoch of all models, fixed costs, epochs that fit in GOAL_SECONDS."""
    p = summary.get("phases", {})
    if "train" not in p or "total" not in p:
        return {}
    per_epoch = p["train"] / summary["epochs"]
    fixed = p["total"] - p["train"]
    fit = (GOAL_SECONDS - fixed) / per_epoch if per_epoch > 0 else float("inf")
    return {
        "models": summary["models"],
        "seconds_per_epoch": per_epoch,
        "fixed_seconds": fixed,
        "epochs_in_goal": max(0.0, fit),
    }


def run_dirs(work: Path) -> dict[str, Path]:
    """The workdirs of the two training runs, by compute dtype."""
    return {dtype: work / f"run_{dtype}" for dtype in ("float32", "bfloat16")}


def stage_argvs(size: Size, work: Path, epochs: int, models: int) -> dict[str, list[str]]:
    """Each stage's arguments to the interpreter (`python -m MODULE FLAGS...`, or `-c`)."""
    runs = run_dirs(work)
    train_flags = (
        *size.train,
        f"--num_models={models}",
        f"--epochs={epochs}",
        "--queries=shift1",
        "--augment_mirror",
        f"--compile_cache={work / 'compile_cache'}",
    )
    return {
        "devices": ["-c", _DEVICES_PROGRAM, ",".join(HEAVY_OPTIONAL), ",".join(PACKAGES)],
        "throughput": [
            "-m",
            "experiments.bench.throughput",
            *size.throughput,
            f"--json_out={work / 'throughput.json'}",
        ],
        **{
            f"train_{dtype}": [
                "-m",
                "experiments.train_shadows",
                f"--workdir={runs[dtype]}",
                *train_flags,
                f"--compute_dtype={dtype}",
            ]
            for dtype in runs
        },
        "attack": [
            "-m",
            "experiments.attack",
            f"--workdir={runs['float32']}",
            *size.attack,
        ],
        "attack_scoring": [
            "-m",
            "experiments.bench.attacks",
            *size.attack_scoring,
            f"--json_out={work / 'attack_scoring.json'}",
        ],
    }


class Check:
    """The stages' records and the files written from them."""

    def __init__(self, out: Path, work: Path, size: str, budget: float):
        self.out, self.work, self.size, self.budget = out, work, size, budget
        self.t0 = time.perf_counter()
        self.data: dict = {
            "size": size,
            "budget_s": budget,
            "wall_s": 0.0,
            "finished": False,
            "install": {},
            "stages": {},
            "comparison": {},
            "goal": {},
        }
        self.logs: dict[str, str] = {}
        self.tables: dict[str, str] = {}

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def record(self, name: str, **fields) -> dict:
        entry = {
            "status": "skipped",
            "command": None,
            "seconds": 0.0,
            "returncode": None,
            "peak_rss_mib": None,
            "error": None,
            "result": {},
        }
        entry.update(fields)
        self.data["stages"][name] = entry
        self.write()
        return entry

    def write(self) -> None:
        self.data["wall_s"] = time.perf_counter() - self.t0
        self.out.mkdir(parents=True, exist_ok=True)
        _write(self.out / "device_check.json", json.dumps(self.data, indent=2) + "\n")
        _write(self.out / "device_check.md", markdown(self.data, self.tables))
        log = "".join(f"\n===== {k} =====\n{v[-LOG_KEEP:]}" for k, v in self.logs.items())
        _write(self.out / "device_check.log", log.lstrip("\n"))


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _fmt(v, spec=".1f") -> str:
    return "-" if v is None else format(v, spec)


def _stage_line(name: str, s: dict) -> str:
    """One cell: the stage's main numbers."""
    r = s.get("result") or {}
    if s["status"] != "ok":  # a timeout's or a skip's reason, or the log's last line
        lines = [ln for ln in (s.get("error") or "").splitlines() if ln.strip()]
        first = s["status"] in ("timeout", "skipped")
        return (lines[0] if first else lines[-1])[:200].replace("|", "/") if lines else ""
    if name == "devices":
        memory = r.get("memory_gib")
        missing = [k for k, v in r.get("importable", {}).items() if v is not True]
        return (
            f"{r.get('backend')}: {r.get('device_kind')} x {len(r.get('devices', []))}"
            + (f", {memory:.0f} GiB" if memory else "")
            + (
                f"; heavy optional imported: {r['heavy_optional_imported']}"
                if r.get("heavy_optional_imported")
                else ""
            )
            + (f"; not importable: {', '.join(missing)}" if missing else "")
        )
    if name == "throughput":
        parts = []
        for setting, v in r.get("settings", {}).items():
            top = max(v["engine"], key=lambda e: e["models"], default=None)
            base = v["flax_loop"]["model_epochs_per_s"]
            if top:
                parts.append(
                    f"{setting}: engine M={top['models']} {top['model_epochs_per_s']:.2f} "
                    f"model-epochs/s ({top['model_epochs_per_s'] / base:.1f}x the flax loop), "
                    f"auto block {v['auto_block']}, peak {_fmt(top['peak_mib'], '.0f')} MiB"
                )
        return "; ".join(parts)
    if name.startswith("train_"):
        p = r.get("phases", {})
        return (
            f"{r.get('models')} models x {r.get('epochs')} epochs in "
            f"{len(r.get('blocks', []))} block(s): "
            + ", ".join(f"{k} {v:.1f}s" for k, v in p.items())
            + f"; test acc {_fmt(r.get('test_accuracy'), '.3f')}"
        )
    if name == "attack":
        aucs = [f"{k} AUC {v['auc']:.3f}" for k, v in r.items() if v.get("auc") is not None]
        return f"{len(r)} attacks; " + ", ".join(aucs[:2])
    if name == "attack_scoring":
        shape = " x ".join(str(v) for v in r.get("shape", {}).values())
        return (
            f"M x N x A x C = {shape}: signals {_fmt(r.get('signals_seconds'))}s, total "
            f"{_fmt(r.get('total_seconds'))}s, peak {_fmt(r.get('peak_rss_gib'))} GiB"
        )
    return ""


def markdown(data: dict, tables: dict[str, str]) -> str:
    """The report: the summary table, the goal, the dtype table, each stage's tables."""
    dev = data["stages"].get("devices", {}).get("result") or {}
    lines = [
        f"## Accelerator check (size `{data['size']}`, {dev.get('backend', '?')}: "
        f"{dev.get('device_kind', '?')}, jax {dev.get('versions', {}).get('jax', '?')})\n",
        f"Budget {data['budget_s']:.0f} s, wall {data['wall_s']:.0f} s"
        + ("" if data["finished"] else " (unfinished)")
        + f"; install rc {data['install'].get('rc')}.\n",
    ]
    rows = [
        [
            name,
            s["status"],
            f"{s['seconds']:.1f}",
            _fmt(s["peak_rss_mib"], ".0f"),
            _stage_line(name, s),
        ]
        for name, s in data["stages"].items()
    ]
    lines.append(table(rows, ["stage", "status", "wall s", "peak RSS MiB", "result"]))
    if data["goal"]:
        lines.append(
            f"\nGoal: 256 CIFAR-10-sized CNN shadow models trained and queried in <= "
            f"{GOAL_SECONDS:.0f} s on one H100-class GPU.\n"
        )
        rows = [
            [
                dtype,
                str(g["models"]),
                f"{g['seconds_per_epoch']:.2f}",
                f"{g['fixed_seconds']:.1f}",
                f"{g['epochs_in_goal']:.1f}",
            ]
            for dtype, g in data["goal"].items()
        ]
        header = ["compute dtype", "models", "s/epoch", "fixed s", f"epochs in {GOAL_SECONDS:.0f}s"]
        lines.append(table(rows, header))
    comparison = data["comparison"]
    if comparison.get("runs"):
        lines.append("\n### float32 against bfloat16 compute (same models)\n")
        rows = []
        for dtype, r in comparison["runs"].items():
            p = r.get("phases", {})
            rows.append(
                [
                    dtype,
                    _fmt(p.get("compile")),
                    _fmt(p.get("train")),
                    _fmt(p.get("query")),
                    _fmt(r.get("train_accuracy"), ".4f"),
                    _fmt(r.get("out_accuracy"), ".4f"),
                    _fmt(r.get("test_accuracy"), ".4f"),
                ]
            )
        header = ["dtype", "compile s", "train s", "query s", "train acc", "OUT acc", "test acc"]
        lines.append(table(rows, header))
        if "prediction_agreement" in comparison:
            lines.append(
                f"\nFirst {comparison['models_compared']} models, query "
                f"{comparison['query']}: predictions agree on "
                f"{comparison['prediction_agreement']:.4f} of the examples; largest logit "
                f"difference {comparison['max_abs_logit_difference']:.3g}."
            )
    for name, text in tables.items():
        lines.append(f"\n### {name}\n\n{text.strip()}")
    return "\n".join(lines) + "\n"


def _tail(text: str, n: int = 3000) -> str:
    return text[-n:]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not _OUT.value:
        raise app.UsageError("--out is required: the folder of device_check.json/.md/.log.")
    unknown = sorted(set(_ONLY.value) - set(STAGES))
    if unknown:
        raise app.UsageError(f"Unknown --stages {unknown}; valid: {list(STAGES)}.")
    size = SIZES[_SIZE.value]
    epochs = _TRAIN_EPOCHS.value or size.epochs
    models = _TRAIN_MODELS.value or size.models
    if epochs < 1 or models < 2:
        raise app.UsageError(
            f"--train_epochs={epochs} must be >= 1 and --train_models={models} >= 2."
        )
    budget = _BUDGET.value if _BUDGET.value is not None else size.budget_s
    if budget <= 0:
        raise app.UsageError(f"--budget_s={budget} must be > 0.")
    out = Path(_OUT.value).resolve()
    if _WORK.value:
        work = Path(_WORK.value).resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="lira_device_check_"))
    check = Check(out, work, _SIZE.value, budget)
    install_log = Path(_INSTALL_LOG.value) if _INSTALL_LOG.value else None
    check.data["install"] = {
        "rc": _INSTALL_RC.value,
        "log": _tail(install_log.read_text(errors="replace"))
        if install_log and install_log.exists()
        else None,
    }
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    order = [s for s in STAGES if s in _ONLY.value]
    runs = run_dirs(work)
    argvs = stage_argvs(size, work, epochs, models)
    needs = {"attack": "train_float32"}
    for name in order:
        left = check.left()
        need = needs.get(name)
        if need and check.data["stages"].get(need, {}).get("status") != "ok":
            check.record(name, error=f"skipped: needs a successful {need} stage")
            continue
        if left <= 1:
            check.record(name, error="skipped: the time budget is spent")
            continue
        timeout = stage_timeout(name, left, size.caps, order)
        if name.startswith("train_"):  # a run left by an earlier check would train nothing
            shutil.rmtree(runs[name.removeprefix("train_")], ignore_errors=True)
        argv = argvs[name]
        run = run_stage(argv, work / f"{name}.log", timeout, env)
        check.logs[name] = run.log
        entry = dict(
            command=[Path(sys.executable).name, *argv] if name != "devices" else ["-c", "..."],
            seconds=run.seconds,
            returncode=run.returncode,
            peak_rss_mib=run.peak_rss_mib,
        )
        if run.returncode is None:
            entry.update(status="timeout", error=f"killed after {timeout:.0f} s\n{_tail(run.log)}")
        elif run.returncode != 0:
            entry.update(status="failed", error=_tail(run.log))
        else:
            try:
                entry.update(status="ok", result=_result(name, run, work, runs, epochs, check))
            except Exception as e:  # a stage that ran but whose output cannot be read
                entry.update(status="failed", error=f"reading its output: {e!r}")
        check.record(name, **entry)
    _compare(check, runs)
    check.data["finished"] = True
    check.write()
    print(check.out / "device_check.md")
    print((check.out / "device_check.md").read_text())


def _result(name: str, run: StageRun, work: Path, runs: dict, epochs: int, check: Check) -> dict:
    """What a finished stage measured (see the module docstring); its tables to `check`."""
    if name == "devices":
        line = next(ln for ln in run.log.splitlines() if ln.startswith("DEVICES_JSON "))
        return json.loads(line.split(" ", 1)[1])
    if name == "throughput":
        check.tables["throughput"] = run.log[run.log.find("## Engine benchmark") :]
        return json.loads((work / "throughput.json").read_text())
    if name.startswith("train_"):
        dtype = name.removeprefix("train_")
        summary = run_summary(runs[dtype], run.log, epochs)
        check.data["goal"][dtype] = goal(summary)
        return summary
    if name == "attack":
        results = runs["float32"] / "results"
        check.tables["attack"] = (results / "attacks.md").read_text()
        attacks = json.loads((results / "attacks.json").read_text())
        seconds_path = results / "attacks_seconds.json"
        seconds = json.loads(seconds_path.read_text()) if seconds_path.exists() else {}
        return {
            k: {
                "auc": v.get("auc"),
                "tpr_at_fpr": v.get("tpr_at_fpr"),
                "seconds": seconds.get(k),
            }
            for k, v in attacks.items()
        }
    if name == "attack_scoring":
        check.tables["attack scoring"] = run.log[run.log.find("| step |") :]
        return json.loads((work / "attack_scoring.json").read_text())
    raise ValueError(name)


def _compare(check: Check, runs: dict) -> None:
    """The float32/bfloat16 comparison, when both runs finished."""
    stages = check.data["stages"]
    done = {d: stages[f"train_{d}"]["result"] for d in runs if _ok(stages, f"train_{d}")}
    check.data["comparison"] = {"runs": done}
    if len(done) == 2:
        try:
            check.data["comparison"].update(compare_runs(runs["float32"], runs["bfloat16"]))
        except Exception as e:  # recorded, never fatal: the stages' results stand
            check.data["comparison"]["error"] = repr(e)


def _ok(stages: dict, name: str) -> bool:
    return stages.get(name, {}).get("status") == "ok"


if __name__ == "__main__":
    app.run(main)
