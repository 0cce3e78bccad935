"""Fault injection: corrupted shards, torn files and kills are detected, named, survived."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experiments import train_shadows, verify
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


def _train_cli(workdir, *flags):
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
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


def test_killed_runs_resume_to_identical_logits(tmp_path):
    """SIGKILL a training job at seeded random moments; re-running finishes the job and
    gives logits bit-identical to an uninterrupted run, reusing checkpoints on the way."""
    reference = tmp_path / "reference"
    proc = _train_cli(reference)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    want = store_lib.open_store(reference / "store").read_logits()

    workdir = tmp_path / "killed"
    rng = np.random.default_rng(0)
    kills = 0
    for _ in range(3):
        proc = _train_cli(workdir)
        # Wait until training is under way (first epoch logged), then kill at a random moment.
        while proc.poll() is None:
            line = proc.stderr.readline()
            if "epoch" in line or not line:
                break
        if proc.poll() is None:
            time.sleep(float(rng.uniform(0.0, 3.0)))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.communicate(timeout=60)
    proc = _train_cli(workdir)  # the same command again, to the end
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    store = store_lib.open_store(workdir / "store")
    assert store.missing_ranges() == [] and verify.verify_run(workdir) == []
    got = store.read_logits()
    np.testing.assert_array_equal(got, want)  # bit-identical, not merely close
    assert kills >= 1
    assert not list((workdir / "checkpoints").rglob("m*-*"))  # removed once in the store
    print(f"kills: {kills}")


_DISK_SCRIPT = r"""
set -u
mount -t tmpfs -o size=8m tmpfs "$MNT" || exit 4
train() { python -m experiments.train_shadows --workdir="$1" $FLAGS "${@:2}"; }
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
