"""Fault injection: corrupted shards, torn files and kills are detected, named, survived."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experiments import train_shadows, verify
from lira_jax import failpoints
from lira_jax import store as store_lib

REPO = Path(__file__).resolve().parents[1]
TINY = dict(max_train=120, arch="cnn16", num_models=4, epochs=1, batch_size=32)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pristine")
    config = train_shadows.make_config("digits", **TINY)
    train_shadows.train_shadows(config, workdir, models_per_step=2, log=lambda _: None)
    return workdir


@pytest.fixture()
def run(pristine, tmp_path):
    """A fresh copy of one trained run per test (training once keeps the file fast)."""
    shutil.copytree(pristine, tmp_path / "run")
    return tmp_path / "run"


def _chunk(workdir, model):
    return workdir / "store" / "logits" / "c" / str(model) / "0" / "0" / "0"


def _cli_verify(workdir):
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, "-m", "experiments.verify", f"--workdir={workdir}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("seed", range(4))
def test_flipped_bytes_are_detected_and_named(run, seed):
    assert verify.verify_run(run) == []
    rng = np.random.default_rng(seed)
    model = int(rng.integers(4))
    path = _chunk(run, model)
    data = bytearray(path.read_bytes())
    pos = int(rng.integers(len(data) // 4, len(data)))  # past the zstd frame header
    data[pos] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = verify.verify_run(run)
    block = "0:2" if model < 2 else "2:4"
    assert len(problems) == 1 and problems[0].startswith(f"corrupt block {block}")
    assert f"--model_range={block}" in problems[0]


def test_truncated_shard_and_missing_block(run):
    path = _chunk(run, 3)
    path.write_bytes(path.read_bytes()[:10])
    (run / "store" / "_blocks" / "m000000-000002.json").unlink()  # as if never finished
    proc = _cli_verify(run)
    assert proc.returncode == 1
    assert "corrupt block 2:4 (unreadable" in proc.stdout
    assert "missing models 0:2" in proc.stdout and "--model_range=0:2" in proc.stdout


def test_repair_by_the_printed_recipe(run):
    before = store_lib.open_store(run / "store").read_logits()
    path = _chunk(run, 1)
    path.write_bytes(path.read_bytes()[:-3])
    assert verify.verify_run(run)[0].startswith("corrupt block 0:2")
    (run / "store" / "_blocks" / "m000000-000002.json").unlink()
    config = train_shadows.make_config("digits", **TINY)
    train_shadows.train_shadows(config, run, model_range="0:2", log=lambda _: None)
    assert verify.verify_run(run) == []
    np.testing.assert_array_equal(store_lib.open_store(run / "store").read_logits(), before)


def _train_cli(workdir, *flags, failpoint=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    env.pop(failpoints.ENV_VAR, None)
    if failpoint:
        env[failpoints.ENV_VAR] = failpoint
    args = [f"--{k}={v}" for k, v in {**TINY, "epochs": 6}.items()]
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "experiments.train_shadows",
            f"--workdir={workdir}",
            *args,
            "--models_per_step=2",
            "--checkpoint_every=1",
            *flags,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc, timeout=600):
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


@pytest.fixture(scope="module")
def reference_logits(tmp_path_factory):
    """The 6-epoch, 2-block run of the kill tests, uninterrupted."""
    workdir = tmp_path_factory.mktemp("reference")
    rc, err = _finish(_train_cli(workdir))
    assert rc == 0, err[-2000:]
    assert "phases: startup=" in err  # the per-phase timing line ends every run
    return store_lib.open_store(workdir / "store").read_logits()


def _checkpoint_epochs(workdir, block="m000000-000002"):
    """Epochs of the saved checkpoints of a block (orbax step directories)."""
    dirs = list((workdir / "checkpoints").glob(f"*/{block}"))
    return sorted(int(p.name) for d in dirs for p in d.iterdir() if p.name.isdigit())


def _records(workdir):
    return sorted(p.name for p in (workdir / "store" / "_blocks").glob("m*.json"))


def _state(workdir):
    return (
        _records(workdir),
        _checkpoint_epochs(workdir),
        sorted(p.name for p in (workdir / "store" / "_blocks").glob(".m*.tmp")),
    )


# The planned kills, in order, on one workdir (6 epochs, blocks [0, 2) and [2, 4),
# a checkpoint after every epoch, orbax keeping the latest): each is the failpoint armed in
# that run and the on-disk state it must leave (completion records, checkpoint epochs of
# block [0, 2), temp record files).
KILLS = [
    # During epoch 3: epochs 1 and 2 were checkpointed (orbax keeps the latest).
    ("epoch_dispatched@3", ([], [2], [])),
    # Resumed after epoch 2; killed right after checkpointing epoch 4 (its 2nd save).
    ("checkpoint_saved@2", ([], [4], [])),
    # Resumed after epoch 4, epoch 5 checkpointed, 6 trained (the last epoch is never
    # checkpointed), logits written, killed before the record.
    ("logits_written", ([], [5], [])),
    # Again from epoch 5, killed between the synced temp record and its rename.
    ("record_renaming", ([], [5], [".m000000-000002.json.tmp"])),
    # Again; the record is in place, killed before the checkpoints are removed.
    ("block_recorded", (["m000000-000002.json"], [5], [".m000000-000002.json.tmp"])),
    # Block [0, 2) is complete: its checkpoint is removed at startup; block [2, 4)
    # is killed during its first epoch (nothing of it saved yet).
    ("epoch_dispatched@1", (["m000000-000002.json"], [], [".m000000-000002.json.tmp"])),
]


def test_kills_at_each_failpoint_resume_to_identical_logits(tmp_path, reference_logits):
    """SIGKILL a training job at every moment that changes what is on disk (failpoints:
    the process kills itself when it reaches the armed point, so the test does not depend
    on the machine's speed). Each kill leaves exactly the planned state, and the same
    command without a failpoint then finishes the store bit-identical to an uninterrupted
    run, with no checkpoint left behind."""
    workdir = tmp_path / "killed"
    kills = []
    for point, want in KILLS:
        rc, err = _finish(_train_cli(workdir, failpoint=point))
        assert rc == -signal.SIGKILL, (point, rc, err[-2000:])
        kills.append(point)
        records, epochs, temps = _state(workdir)
        temps = [re.sub(r"\.json\..*\.tmp$", ".json.tmp", t) for t in temps]
        assert (records, epochs, temps) == want, point
    assert kills == [k for k, _ in KILLS]  # every planned kill happened, in order
    rc, err = _finish(_train_cli(workdir))  # the same command again, to the end
    assert rc == 0, err[-2000:]
    store = store_lib.open_store(workdir / "store")
    assert store.missing_ranges() == [] and verify.verify_run(workdir) == []
    np.testing.assert_array_equal(store.read_logits(), reference_logits)  # bit-identical
    assert not list((workdir / "checkpoints").rglob("m*-*"))  # removed once in the store


def test_a_malformed_failpoint_is_one_clear_error(tmp_path):
    rc, err = _finish(_train_cli(tmp_path / "w", failpoint="checkpoint_saevd@2"))
    assert rc == 1
    assert err.strip().splitlines()[-1].startswith("error: LIRA_JAX_FAILPOINT=")
    assert not (tmp_path / "w").exists()  # refused before anything was written


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(8))
def test_soak_kills_at_random_moments(tmp_path, reference_logits, seed):
    """Outside CI (`python -m pytest -m soak tests/test_faults.py`): SIGKILL at seeded
    random moments (a timer, not a failpoint), three times, then finish; bit-identical.
    How many kills land depends on the machine's speed: they are counted, not required."""
    workdir = tmp_path / "killed"
    rng = np.random.default_rng(seed)
    kills = 0
    for _ in range(3):
        proc = _train_cli(workdir)
        while proc.poll() is None:  # wait until training is under way
            line = proc.stderr.readline()
            if "epoch" in line or not line:
                break
        time.sleep(float(rng.uniform(0.0, 1.5)))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.communicate(timeout=60)
    rc, err = _finish(_train_cli(workdir))
    assert rc == 0, err[-2000:]
    got = store_lib.open_store(workdir / "store").read_logits()
    np.testing.assert_array_equal(got, reference_logits)
    assert not list((workdir / "checkpoints").rglob("m*-*"))
    print(f"seed {seed}: {kills} kills landed")


_DISK_SCRIPT = r"""
set -u
mount -t tmpfs -o size=8m tmpfs "$MNT" || exit 4
train() { "$PYTHON" -m experiments.train_shadows --workdir="$1" $FLAGS "${@:2}"; }
train "$MNT/base" --model_range=0:2 > "$OUT/base.log" 2>&1 || exit 3
for free in $FREES; do
  cp -r "$MNT/base" "$MNT/run"
  avail=$(df -k --output=avail "$MNT" | tail -1)
  dd if=/dev/zero of="$MNT/fill" bs=1k count=$((avail - free)) > /dev/null 2>&1
  train "$MNT/run" > "$OUT/$free.log" 2>&1; echo $? > "$OUT/$free.rc"
  ls "$MNT/run/checkpoints/"*/ > "$OUT/$free.ckpt" 2>/dev/null
  rm "$MNT/fill"
  train "$MNT/run" > "$OUT/$free.rerun.log" 2>&1; echo $? > "$OUT/$free.rerun.rc"
  cp -r "$MNT/run" "$OUT/run$free" && rm -r "$MNT/run"
done
"""


def test_full_disk_at_each_stage_loses_nothing(tmp_path):
    """A disk that is full when a run starts, when a checkpoint is due, or when a block's
    logits are written: one clear error or a warning, completed blocks intact, and the same
    command finishes the store (equal to a run that never ran out of space) once there is
    room again. The small disk is a tmpfs mounted in a user namespace (no root needed)."""
    if subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True).returncode:
        pytest.skip("needs `unshare -r -m` (user namespaces) to mount a small tmpfs")
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    flags = [f"--{k}={v}" for k, v in {**TINY, "epochs": 2}.items()]
    flags += ["--models_per_step=2", "--checkpoint_every=1"]
    # KiB left free for the second block: none; room for its logits but not a checkpoint
    # (~0.4 MiB of orbax files here); plenty.
    frees = ["0", "40", "200", "4000"]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "JAX_PLATFORMS": "cpu",
        "PYTHON": sys.executable,  # the interpreter running the tests, not `python` on PATH
        "MNT": str(mnt),
        "OUT": str(out),
        "FREES": " ".join(frees),
        "FLAGS": " ".join(flags),
    }
    proc = subprocess.run(
        ["unshare", "-r", "-m", "bash", "-c", _DISK_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:] + (out / "base.log").read_text()[-2000:]

    want = store_lib.open_store(out / "run4000" / "store").read_logits()
    outcomes = {}
    for free in frees:
        log = (out / f"{free}.log").read_text()
        rc = int((out / f"{free}.rc").read_text())
        assert "Traceback" not in log, log[-3000:]
        if rc:
            last = log.strip().splitlines()[-1]
            assert rc == 1 and last.startswith("error: [Errno 28] No space left on device"), log
            assert "re-running the same command continues" in last
            outcomes[free] = "error at store write" if "writing models [2, 4)" in last else "error"
        else:
            outcomes[free] = "checkpoint skipped" if "not saved" in log else "ok"
        # Nothing already written is lost, and the same command completes the store.
        assert int((out / f"{free}.rerun.rc").read_text()) == 0
        run = out / f"run{free}"
        assert verify.verify_run(run) == []
        np.testing.assert_array_equal(store_lib.open_store(run / "store").read_logits(), want)
        assert not list((run / "checkpoints").rglob("*orbax-checkpoint-tmp*"))
    assert outcomes == {
        "0": "error",
        "40": "error at store write",
        "200": "checkpoint skipped",
        "4000": "ok",
    }, outcomes
    print(outcomes)
