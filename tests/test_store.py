"""Tests for lira_jax.store: round trip, concurrency, plain-zarr readability, failure modes."""

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
import zarr

from lira_jax import store as st

M, N, A, C = 6, 7, 2, 3
REPO = Path(__file__).resolve().parents[1]


def _spec(**config_overrides):
    config = {"dataset": "digits", "arch": "mlp", "lr": 0.1, "seed": 0, "opt": {"momentum": 0.9}}
    config.update(config_overrides)
    return st.StoreSpec(M, N, A, C, ("identity", "hflip"), config)


def _keep_labels():
    rng = np.random.default_rng(0)
    return rng.random((M, N)) < 0.5, rng.integers(0, C, N)


def _logits(seed=1):
    return np.random.default_rng(seed).normal(size=(M, N, A, C)).astype(np.float32)


def _create(path, **config_overrides):
    keep, labels = _keep_labels()
    return st.create_or_open(path, _spec(**config_overrides), keep, labels)


def _snapshot(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def test_round_trip_and_missing_ranges(tmp_path):
    path = tmp_path / "store"
    s = _create(path)
    expected = _logits()
    assert s.missing_ranges() == [(0, M)]
    assert not s.is_complete(0, M)

    s.write_block(0, expected[0:2], extra={"train_acc": [0.9, 0.8]})
    assert s.completed_ranges() == [(0, 2)]
    assert s.missing_ranges() == [(2, M)]
    assert s.is_complete(0, 2) and not s.is_complete(1, 3)

    s.write_block(4, expected[4:6])
    assert s.missing_ranges() == [(2, 4)]
    np.testing.assert_array_equal(s.missing_models(), [2, 3])
    s.write_block(2, expected[2:4])
    assert s.missing_ranges() == [] and s.is_complete(0, M)
    s.require_complete()
    s.verify()

    r = st.open_store(path)
    np.testing.assert_array_equal(r.read_logits(), expected)
    np.testing.assert_array_equal(r.read_logits(slice(1, 3), [0, 5]), expected[1:3][:, [0, 5]])
    np.testing.assert_array_equal(r.keep(), _keep_labels()[0])
    np.testing.assert_array_equal(r.labels(), _keep_labels()[1])
    assert r.query_names == ("identity", "hflip")
    records = r.records()
    assert [(x["start"], x["stop"]) for x in records] == [(0, 2), (2, 4), (4, 6)]
    assert records[0]["extra"] == {"train_acc": [0.9, 0.8]}
    assert records[0]["config_fingerprint"] == st.config_fingerprint(_spec().config)
    assert (path / "_blocks" / "m000000-000002.json").is_file()
    # Reopening with the same spec is a no-op and sees the written data.
    s2 = _create(path)
    np.testing.assert_array_equal(s2.read_logits(3), expected[3])


def test_float16_store_round_trips_and_checksums(tmp_path):
    keep, labels = _keep_labels()
    s = st.create_or_open(tmp_path / "s", _spec(), keep, labels, logits_dtype="float16")
    expected = _logits()
    s.write_block(0, expected)
    got = s.read_logits()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected.astype(np.float16).astype(np.float32))
    s.verify()
    with pytest.raises(st.StoreError, match=r"models \[0\]"):
        st.create_or_open(tmp_path / "t", _spec(), keep, labels, "float16").write_block(
            0, np.full((1, N, A, C), 1e6, np.float32)
        )


_WORKER = textwrap.dedent(
    """
    import sys, numpy as np
    from lira_jax import store as st
    path, start, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(0)
    keep, labels = rng.random(({M}, {N})) < 0.5, rng.integers(0, {C}, {N})
    config = {{"dataset": "digits", "arch": "mlp", "lr": 0.1, "seed": 0,
              "opt": {{"momentum": 0.9}}}}
    spec = st.StoreSpec({M}, {N}, {A}, {C}, ("identity", "hflip"), config)
    s = st.create_or_open(path, spec, keep, labels)
    logits = np.random.default_rng(1).normal(size=({M}, {N}, {A}, {C})).astype(np.float32)
    for b in range(start, stop):  # One-model blocks: many interleaved writes.
        s.write_block(b, logits[b:b + 1], extra={{"pid": b}})
    """
).format(M=M, N=N, A=A, C=C)


def test_two_processes_write_disjoint_ranges(tmp_path):
    path = tmp_path / "store"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), str(a), str(b)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for a, b in ((0, 3), (3, M))
    ]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    s = st.open_store(path)
    s.require_complete()
    s.verify()
    assert s.completed_ranges() == [(i, i + 1) for i in range(M)]
    np.testing.assert_array_equal(s.read_logits(), _logits())
    np.testing.assert_array_equal(s.keep(), _keep_labels()[0])


def test_readable_with_plain_zarr_and_tensorstore(tmp_path):
    path = tmp_path / "store"
    s = _create(path)
    expected = _logits()
    s.write_block(0, expected)
    keep, labels = _keep_labels()

    g = zarr.open_group(path, mode="r")
    np.testing.assert_array_equal(g["logits"][...], expected)
    np.testing.assert_array_equal(g["keep"][...], keep)
    np.testing.assert_array_equal(g["labels"][...], labels)
    assert g["logits"].chunks == (1, N, A, C)
    meta = g.attrs["lira_jax"]
    assert meta["format_version"] == st.FORMAT_VERSION
    assert (meta["num_models"], meta["num_examples"], meta["num_queries"]) == (M, N, A)
    assert meta["num_classes"] == C and meta["query_names"] == ["identity", "hflip"]
    assert meta["config"]["lr"] == 0.1
    assert set(meta["library_versions"]) >= {"jax", "numpy", "tensorstore", "lira_jax"}
    assert {"logits", "keep", "labels"} <= set(g.keys())

    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path / "logits")}})
    np.testing.assert_array_equal(t.result()[2:4].read().result(), expected[2:4])
    record = json.loads((path / "_blocks" / f"m000000-{M:06d}.json").read_text())
    assert record["start"] == 0 and record["stop"] == M and len(record["sha256"]) == 64


def test_mismatched_config_raises_and_leaves_store_unchanged(tmp_path):
    path = tmp_path / "store"
    _create(path).write_block(0, _logits()[:2])
    before = _snapshot(path)
    with pytest.raises(st.StoreMismatchError, match=r"lr: 0\.1 -> 0\.2") as e:
        _create(path, lr=0.2)
    assert "--workdir" in str(e.value)
    with pytest.raises(st.StoreMismatchError, match=r"opt\.momentum"):
        _create(path, opt={"momentum": 0.0})
    keep, labels = _keep_labels()
    with pytest.raises(st.StoreMismatchError, match="keep"):
        st.create_or_open(path, _spec(), ~keep, labels)
    with pytest.raises(st.StoreMismatchError, match="num_models"):
        st.create_or_open(
            path,
            st.StoreSpec(M + 1, N, A, C, ("a", "b"), _spec().config),
            np.ones((M + 1, N), bool),
            labels,
        )
    assert _snapshot(path) == before


def test_write_block_rejects_bad_input(tmp_path):
    path = tmp_path / "store"
    s = _create(path)
    logits = _logits()
    bad = logits[1:4].copy()
    bad[1, 0, 0, 0] = np.nan
    bad[2, 3, 1, 2] = np.inf
    with pytest.raises(st.StoreError, match=r"models \[2, 3\]"):
        s.write_block(1, bad)
    assert s.completed_ranges() == []
    np.testing.assert_array_equal(s.read_logits(allow_incomplete=True), 0.0)

    s.write_block(0, logits[:2])
    with pytest.raises(st.StoreError, match="overlaps completed"):
        s.write_block(1, logits[1:3])
    with pytest.raises(st.StoreError, match="outside"):
        s.write_block(M - 1, logits[:2])
    with pytest.raises(st.StoreError, match="outside"):
        s.write_block(-1, logits[:1])
    with pytest.raises(st.StoreError, match="shape"):
        s.write_block(2, logits[2:4, :, :1])
    with pytest.raises(st.StoreError, match="read-only"):
        st.open_store(path).write_block(3, logits[3:4])
    np.testing.assert_array_equal(s.read_logits(slice(0, 2)), logits[:2])
    assert s.completed_ranges() == [(0, 2)]


def test_require_complete_names_missing_ranges(tmp_path):
    s = _create(tmp_path / "store")
    s.write_block(2, _logits()[2:4])
    with pytest.raises(st.IncompleteStoreError, match=r"0:2, 4:6") as e:
        s.require_complete()
    assert "--model_range=0:2" in str(e.value) and "--model_range=4:6" in str(e.value)
    with pytest.raises(st.IncompleteStoreError, match="0:2"):
        s.read_logits()
    np.testing.assert_array_equal(s.read_logits(slice(2, 4)), _logits()[2:4])


def test_open_store_errors(tmp_path):
    with pytest.raises(st.StoreError, match="train_shadows"):
        st.open_store(tmp_path)
    with pytest.raises(st.StoreError, match="train_shadows"):
        st.open_store(tmp_path / "nope")
    _create(tmp_path / "store")
    with pytest.raises(st.StoreError, match="did you mean"):
        st.open_store(tmp_path)
    group = json.loads((tmp_path / "store" / "zarr.json").read_text())
    group["attributes"]["lira_jax"]["format_version"] = st.FORMAT_VERSION + 1
    (tmp_path / "store" / "zarr.json").write_text(json.dumps(group))
    with pytest.raises(st.StoreError, match="newer"):
        st.open_store(tmp_path / "store")


def test_config_fingerprint_is_order_independent():
    assert st.config_fingerprint({"a": 1, "b": [1, 2]}) == st.config_fingerprint(
        {"b": (1, 2), "a": 1}
    )
    assert st.config_fingerprint({"a": 1}) != st.config_fingerprint({"a": 2})
    with pytest.raises(st.StoreError, match="JSON"):
        st.config_fingerprint({"a": np.zeros(2)})


def test_test_logits_round_trip_and_verification(tmp_path):
    keep, labels = _keep_labels()
    spec = st.StoreSpec(M, N, A, C, ("identity", "hflip"), {"seed": 0}, num_test_examples=4)
    test_labels = np.array([0, 1, 2, 0])
    with pytest.raises(st.StoreError, match="test_labels must be given"):
        st.create_or_open(tmp_path / "s", spec, keep, labels)
    store = st.create_or_open(tmp_path / "s", spec, keep, labels, test_labels=test_labels)
    logits = _logits()
    test = np.random.default_rng(2).normal(size=(M, 4, C)).astype(np.float32)
    with pytest.raises(st.StoreError, match="test_logits must be given"):
        store.write_block(0, logits[:3])
    store.write_block(0, logits[:3], test_logits=test[:3])
    store.write_block(3, logits[3:], test_logits=test[3:])
    reopened = st.open_store(tmp_path / "s")
    np.testing.assert_array_equal(reopened.read_test_logits(), test)
    np.testing.assert_array_equal(reopened.test_labels(), test_labels)
    reopened.verify()
    # Corrupting a test chunk is caught by verify and named.
    ts_arr = ts.open(st._array_spec(tmp_path / "s", "test_logits"), read=True, write=True).result()
    ts_arr[4, 0, 0].write(99.0).result()
    with pytest.raises(st.StoreError, match=r"3:6 \(test logits sha256 differs\)"):
        reopened.verify()
    # A store without test logits says how to get them.
    plain = _create(tmp_path / "p")
    with pytest.raises(st.StoreError, match="--store_test_logits"):
        plain.read_test_logits()


def test_claims_refuse_overlaps_and_take_over_dead_processes(tmp_path):
    store = _create(tmp_path / "s")
    with store.claim(0, 3):
        claim_file = tmp_path / "s" / "_blocks" / "m000000-000003.claim"
        assert json.loads(claim_file.read_text())["pid"] == os.getpid()
        # Another live process holding an overlapping claim is refused, by name.
        other = {"start": 2, "stop": 5, "host": "elsewhere", "pid": 1, "claimed_at": "x"}
        (tmp_path / "s" / "_blocks" / "m000002-000005.claim").write_text(json.dumps(other))
    assert not claim_file.exists()  # released on exit
    with pytest.raises(st.BlockClaimedError, match=r"elsewhere pid 1 .*delete the claim"):
        with store.claim(4, 6):
            pass
    (tmp_path / "s" / "_blocks" / "m000002-000005.claim").unlink()
    # A claim left by a dead process on this host (a killed job) is taken over.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    import socket

    stale = {
        "start": 0,
        "stop": 6,
        "host": socket.gethostname(),
        "pid": int(dead),
        "claimed_at": "2020",
    }
    (tmp_path / "s" / "_blocks" / "m000000-000006.claim").write_text(json.dumps(stale))
    with store.claim(0, 6):
        store.write_block(0, _logits())
    assert store.missing_ranges() == []
    assert not list((tmp_path / "s" / "_blocks").glob("*.claim"))


def test_claims_of_other_hosts_are_leases(tmp_path):
    store = _create(tmp_path / "s")
    blocks = tmp_path / "s" / "_blocks"
    other = {"start": 0, "stop": 3, "host": "node17", "pid": 4242, "claimed_at": "2020"}
    path = blocks / "m000000-000003.claim"
    path.write_text(json.dumps(other))
    with pytest.raises(st.BlockClaimedError, match="node17 pid 4242"):  # heartbeat is fresh
        with store.claim(2, 4):
            pass
    # Its job stopped beating a lease ago (preempted): the claim is taken over.
    old = time.time() - st.CLAIM_LEASE_SECONDS - 5
    os.utime(path, (old, old))
    with store.claim(2, 4):
        assert not path.exists()
    # While held, a claim's heartbeat keeps its file fresh.
    with store.claim(0, 6, heartbeat_seconds=0.02):
        mine = blocks / "m000000-000006.claim"
        os.utime(mine, (old, old))
        deadline = time.time() + 30
        while mine.stat().st_mtime == old and time.time() < deadline:
            time.sleep(0.01)
        assert time.time() - mine.stat().st_mtime < st.CLAIM_LEASE_SECONDS
    assert not list(blocks.glob("*.claim"))


def test_os_errors_of_tensorstore_are_recognised():
    full = ValueError(
        'RESOURCE_EXHAUSTED: Error writing local file "/d/a/c/0": Failed to write 2955520 '
        "bytes to file 3: No space left on device [os_error_code='28']"
    )
    err = st.os_error_of(full, "writing models [0, 2) to /d")
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC
    assert str(err) == "[Errno 28] No space left on device (writing models [0, 2) to /d)"
    denied = st.os_error_of(ValueError("PERMISSION_DENIED: open failed"), "creating /d")
    assert denied.errno == errno.EIO and "PERMISSION_DENIED" in str(denied)
    assert st.os_error_of(ValueError("Error opening: shape mismatch"), "creating /d") is None


def test_older_format_and_bad_labels_are_refused(tmp_path):
    _create(tmp_path / "store")
    group = json.loads((tmp_path / "store" / "zarr.json").read_text())
    group["attributes"]["lira_jax"]["format_version"] = 0
    (tmp_path / "store" / "zarr.json").write_text(json.dumps(group))
    with pytest.raises(st.StoreError, match="older than this lira_jax supports"):
        st.open_store(tmp_path / "store")
    keep, labels = _keep_labels()
    with pytest.raises(st.StoreError, match=r"labels must lie in \[0, num_classes=3\)"):
        st.create_or_open(tmp_path / "other", _spec(), keep, labels + 5)
    assert not (tmp_path / "other" / "zarr.json").exists()


# -- optional arrays ---------------------------------------------------------------------------

_LABEL_ARRAYS = ("canary", "private_labels", "train_labels")


def _label_arrays(seed=0):
    rng = np.random.default_rng(seed)
    canary = np.zeros(N, bool)
    canary[[1, 4]] = True
    private = np.tile(rng.integers(0, C, N), (M, 1))
    private[:, canary] = rng.integers(0, C, (M, 2))
    train = np.where(rng.random((M, N)) < 0.3, (private + 1) % C, private)
    return {"canary": canary, "private_labels": private, "train_labels": train}


def _label_spec(**kw):
    return st.StoreSpec(
        M, N, A, C, ("identity", "hflip"), {"seed": 0}, optional_arrays=_LABEL_ARRAYS, **kw
    )


def test_label_arrays_round_trip_and_are_checked_on_reopen(tmp_path):
    keep, labels = _keep_labels()
    arrays = _label_arrays()
    s = st.create_or_open(tmp_path / "s", _label_spec(), keep, labels, arrays=arrays)
    assert s.optional_arrays == ("canary", "private_labels", "train_labels")
    s.write_block(0, _logits())
    r = st.open_store(tmp_path / "s", complete=True)
    np.testing.assert_array_equal(r.canary(), arrays["canary"])
    np.testing.assert_array_equal(r.private_labels(), arrays["private_labels"])
    np.testing.assert_array_equal(r.train_labels([4, 1]), arrays["train_labels"][[4, 1]])
    np.testing.assert_array_equal(r.labels(), labels)  # the true labels stay as they were
    r.verify()
    # Readable without lira_jax, one model per chunk.
    g = zarr.open_group(tmp_path / "s", mode="r")
    np.testing.assert_array_equal(g["train_labels"][...], arrays["train_labels"])
    assert g["private_labels"].chunks == (1, N) and g["canary"].dtype == bool
    assert g.attrs["lira_jax"]["optional_arrays"] == list(_LABEL_ARRAYS)
    # Reopening: same values are fine; different values, or another set of arrays, are not.
    st.create_or_open(tmp_path / "s", _label_spec(), keep, labels, arrays=_label_arrays())
    before = _snapshot(tmp_path / "s")
    other = {**arrays, "train_labels": arrays["private_labels"]}
    with pytest.raises(st.StoreMismatchError, match="different `train_labels`"):
        st.create_or_open(tmp_path / "s", _label_spec(), keep, labels, arrays=other)
    with pytest.raises(st.StoreMismatchError, match="optional_arrays"):
        st.create_or_open(tmp_path / "s", _spec(), keep, labels)
    assert _snapshot(tmp_path / "s") == before
    # A store without them says how to get them.
    plain = _create(tmp_path / "p")
    assert not plain.has_array("canary")
    with pytest.raises(st.StoreError, match="--num_canaries"):
        plain.private_labels()


def test_optional_array_specs_and_values_are_validated(tmp_path):
    keep, labels = _keep_labels()
    arrays = _label_arrays()
    with pytest.raises(st.StoreError, match="unknown names"):
        st.StoreSpec(M, N, A, C, ("a", "b"), {}, optional_arrays=("groupz",))
    with pytest.raises(st.StoreError, match="without"):
        st.StoreSpec(M, N, A, C, ("a", "b"), {}, optional_arrays=("canary",))
    with pytest.raises(st.StoreError, match="num_test_examples"):
        st.StoreSpec(M, N, A, C, ("a", "b"), {}, optional_arrays=("test_logits", "test_labels"))
    with pytest.raises(st.StoreError, match=r"missing \['train_labels'\]"):
        st.create_or_open(
            tmp_path / "s",
            _label_spec(),
            keep,
            labels,
            arrays={k: v for k, v in arrays.items() if k != "train_labels"},
        )
    with pytest.raises(st.StoreError, match=r"private_labels .* must have shape \[6, 7\]"):
        bad = {**arrays, "private_labels": arrays["private_labels"][:2]}
        st.create_or_open(tmp_path / "s", _label_spec(), keep, labels, arrays=bad)
    with pytest.raises(st.StoreError, match=r"train_labels must lie in \[0, num_classes=3\)"):
        bad = {**arrays, "train_labels": arrays["train_labels"] + 3}
        st.create_or_open(tmp_path / "s", _label_spec(), keep, labels, arrays=bad)
    with pytest.raises(st.StoreError, match="not in the spec"):
        st.create_or_open(tmp_path / "s", _spec(), keep, labels, arrays=arrays)
    assert not (tmp_path / "s" / "zarr.json").exists()


def test_verify_detects_damaged_creation_arrays(tmp_path):
    keep, labels = _keep_labels()
    s = st.create_or_open(tmp_path / "s", _label_spec(), keep, labels, arrays=_label_arrays())
    s.write_block(0, _logits())
    assert s.corrupt_arrays() == [] and s.corrupt_blocks() == []
    handle = ts.open(st._array_spec(tmp_path / "s", "private_labels"), read=True, write=True)
    handle.result()[3, 2].write((int(_label_arrays()["private_labels"][3, 2]) + 1) % C).result()
    handle = ts.open(st._array_spec(tmp_path / "s", "keep"), read=True, write=True).result()
    handle[0, 0].write(not bool(keep[0, 0])).result()
    assert st.open_store(tmp_path / "s").corrupt_arrays() == [
        ("keep", "sha256 differs"),
        ("private_labels", "sha256 differs"),
    ]
    with pytest.raises(st.StoreError, match=r"keep \(sha256 differs\), private_labels"):
        st.open_store(tmp_path / "s").verify()


def _as_older_format(path: Path) -> None:
    """Rewrites a store's metadata as the format-1 stores written before optional arrays had
    a table (no `optional_arrays`, no `array_sha256`); arrays and records are unchanged."""
    group = json.loads((path / "zarr.json").read_text())
    meta = group["attributes"]["lira_jax"]
    for key in ("optional_arrays", "array_sha256"):
        meta.pop(key)
    (path / "zarr.json").write_text(json.dumps(group))


@pytest.mark.parametrize("num_test", [0, 4])
def test_older_stores_open_unchanged(tmp_path, num_test):
    keep, labels = _keep_labels()
    spec = st.StoreSpec(M, N, A, C, ("identity", "hflip"), {"seed": 0}, num_test_examples=num_test)
    test_labels = np.array([0, 1, 2, 0]) if num_test else None
    s = st.create_or_open(tmp_path / "s", spec, keep, labels, test_labels=test_labels)
    test = np.random.default_rng(2).normal(size=(M, 4, C)).astype(np.float32)
    s.write_block(0, _logits(), test_logits=test if num_test else None)
    _as_older_format(tmp_path / "s")
    before = _snapshot(tmp_path / "s")
    old = st.open_store(tmp_path / "s", complete=True)
    assert old.optional_arrays == (("test_labels", "test_logits") if num_test else ())
    np.testing.assert_array_equal(old.read_logits(), _logits())
    if num_test:
        np.testing.assert_array_equal(old.read_test_logits(), test)
        np.testing.assert_array_equal(old.test_labels(), test_labels)
    old.verify()  # its records' checksums; no creation checksums to check
    assert old.corrupt_arrays() == []
    # The writer reopens it with the same spec (a resumed run of an older store).
    again = st.create_or_open(tmp_path / "s", spec, keep, labels, test_labels=test_labels)
    assert again.is_complete()
    assert _snapshot(tmp_path / "s") == before


def test_one_table_entry_is_a_whole_new_per_block_array(tmp_path, monkeypatch):
    # An array declared only in the table is created, written per block with its checksum,
    # verified and read, with no other change to the store.
    entry = st.OptionalArray(
        "margins",
        group="margins",
        shape=lambda d: (d.m, d.n),
        dtype="float32",
        kind="logits",
        per_block=True,
        description="margins",
        hint="n/a",
    )
    monkeypatch.setitem(st.OPTIONAL_ARRAYS, "margins", entry)
    keep, labels = _keep_labels()
    spec = st.StoreSpec(M, N, A, C, ("a", "b"), {}, optional_arrays=("margins",))
    s = st.create_or_open(tmp_path / "s", spec, keep, labels)
    margins = np.random.default_rng(3).normal(size=(M, N)).astype(np.float32)
    with pytest.raises(st.StoreError, match=r"exactly the store's per-block arrays \['margins'\]"):
        s.write_block(0, _logits()[:2])
    s.write_block(0, _logits()[:2], arrays={"margins": margins[:2]})
    s.write_block(2, _logits()[2:], arrays={"margins": margins[2:]})
    assert "margins_sha256" in s.records()[0]
    np.testing.assert_array_equal(s.read_array("margins", [5, 0]), margins[[5, 0]])
    s.verify()
    ts.open(st._array_spec(tmp_path / "s", "margins"), read=True, write=True).result()[4, 1].write(
        7.0
    ).result()
    assert s.corrupt_blocks() == [(2, 6, "margins sha256 differs")]
