"""Claims: which process is writing which model range, as lease files in ``_blocks``.

Design notes: a claim is a file ``_blocks/m{start}-{stop}.claim`` created exclusively (first
writer wins) and removed when its block is done. Liveness is by pid on the same host and by
a heartbeat lease across hosts (a shared filesystem), so a killed or preempted job's claim is
taken over instead of blocking its range forever.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import socket
import threading
import time
from pathlib import Path

from lira_jax.store.errors import BlockClaimedError
from lira_jax.store.files import _read_json, _write_json_atomic

_CLAIM_RE = re.compile(r"^m(\d{6,})-(\d{6,})\.claim$")
# Claims across hosts are leases: refreshed every CLAIM_HEARTBEAT_SECONDS while held, and
# taken as dead after CLAIM_LEASE_SECONDS without a refresh (ten missed beats: generous for
# clock skew between hosts and for a busy shared filesystem).
CLAIM_HEARTBEAT_SECONDS = 60.0
CLAIM_LEASE_SECONDS = 600.0


def _claims(blocks: Path) -> list[tuple[Path, dict]]:
    claims = []
    for entry in os.scandir(blocks):
        if _CLAIM_RE.match(entry.name):
            try:
                claims.append((Path(entry.path), _read_json(Path(entry.path))))
            except (OSError, ValueError):  # Released (or half-written) meanwhile.
                continue
    return claims


@contextlib.contextmanager
def claim_range(
    blocks: Path, start: int, stop: int, heartbeat_seconds: float = CLAIM_HEARTBEAT_SECONDS
):
    """Claims models ``[start, stop)`` of the store whose ``_blocks`` directory is `blocks`.

    A claim is a file ``_blocks/m{start}-{stop}.claim`` (host, pid, time), created
    exclusively and removed on exit. Overlapping claims of live processes make this
    raise; claims left by dead processes are taken over. When two processes claim
    overlapping ranges at the same moment, the earlier claim (by time, then host and
    pid) wins and the other raises.

    Liveness: on this host, by the claim's pid. Across hosts (a shared filesystem) a
    claim is a lease: while held, a daemon thread touches the file every
    ``heartbeat_seconds``, and a claim of another host whose file is older than
    ``CLAIM_LEASE_SECONDS`` is taken as dead (a preempted or killed job) and taken over.

    Args:
      blocks: the store's ``_blocks`` directory.
      start, stop: the model range.
      heartbeat_seconds: how often the held claim's modification time is refreshed.

    Raises:
      BlockClaimedError: naming the other process and its claim file.
    """
    mine = {
        "start": int(start),
        "stop": int(stop),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "claimed_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
    }
    key = lambda c: (c["claimed_at"], c["host"], c["pid"])  # noqa: E731

    def conflicts():
        out = []
        for path, other in _claims(blocks):
            if other.get("pid") == mine["pid"] and other.get("host") == mine["host"]:
                continue
            if not (other["start"] < stop and start < other["stop"]):
                continue
            if _claim_is_stale(other, path):
                path.unlink(missing_ok=True)
                continue
            out.append((path, other))
        return out

    def refuse(path, other):
        raise BlockClaimedError(
            f"Models [{other['start']}, {other['stop']}) are being trained by "
            f"{other['host']} pid {other['pid']} since {other['claimed_at']} (claim file "
            f"{path}). If that job is dead, delete the claim file and re-run (a claim "
            f"of another host also lapses {CLAIM_LEASE_SECONDS / 60:.0f} min after its "
            "job's last heartbeat)."
        )

    for path, other in conflicts():
        refuse(path, other)
    own = blocks / f"m{start:06d}-{stop:06d}.claim"
    if not _write_json_atomic(own, mine, exclusive=True):
        other = _read_json(own)
        if not _claim_is_stale(other, own):
            refuse(own, other)
        own.unlink(missing_ok=True)
        if not _write_json_atomic(own, mine, exclusive=True):
            refuse(own, _read_json(own))
    stop_beating = threading.Event()
    beat = threading.Thread(
        target=_heartbeat, args=(own, heartbeat_seconds, stop_beating), daemon=True
    )
    try:
        for path, other in conflicts():  # A racing overlapping claim: earlier one wins.
            if key(other) < key(mine):
                refuse(path, other)
        beat.start()
        yield
    finally:
        stop_beating.set()
        if beat.is_alive():
            beat.join()
        own.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Alive, owned by someone else.
        return True
    return True


def _heartbeat(path: Path, every: float, stop: threading.Event) -> None:
    """Refreshes a held claim's modification time until `stop` is set."""
    while not stop.wait(every):
        try:
            os.utime(path)
        except OSError:  # Taken over after a long stall, or the store was moved: stop.
            return


def _claim_is_stale(claim: dict, path: Path) -> bool:
    """A claim is stale when its process is known dead: on this host, no such pid; on
    another host, no heartbeat for `CLAIM_LEASE_SECONDS`."""
    if claim.get("host") == socket.gethostname():
        return not _pid_alive(int(claim.get("pid", -1)))
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:  # Released meanwhile.
        return True
    return age > CLAIM_LEASE_SECONDS
