"""Image augmentations: the train-time random ones and the fixed query set.

Design notes: both are shifts by reflect-padding and cropping, plus an optional
horizontal mirror (only where the dataset's labels are mirror invariant). Train
augmentation is a pure function of a JAX key, so it vmaps over models with a key
per model. Queries are named `(mirror, dy, dx)` triples; their names go into the
store so an analysis knows what each of the A logit slices is. Tabular data (flat
feature vectors) has neither: only the identity query, and no train augmentation
(`check_tabular`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Query(NamedTuple):
    mirror: bool
    dy: int
    dx: int

    @property
    def name(self) -> str:
        return f"{'mirror' if self.mirror else 'id'}_dy{self.dy:+d}_dx{self.dx:+d}"


def check_tabular(queries: str, augment_shift: int, augment_mirror: bool) -> None:
    """Refuses shifts and mirrors for tabular data (flat feature vectors).

    Raises:
      ValueError: naming the offending setting and the flag that fixes it.
    """
    bad = []
    if queries != "identity":
        bad.append(f"queries={queries!r} (use --queries=identity)")
    if augment_shift:
        bad.append(f"augment_shift={augment_shift} (use --augment_shift=0)")
    if augment_mirror:
        bad.append(f"augment_mirror={augment_mirror} (use --noaugment_mirror)")
    if bad:
        raise ValueError(
            "Tabular data (flat feature vectors) has no pixels to shift or mirror: "
            + "; ".join(bad)
            + "."
        )


def query_set(spec: str, mirror_ok: bool, *, tabular: bool = False) -> tuple[Query, ...]:
    """The fixed query set by name.

    Args:
      spec: "identity" (A=1); "mirror" (identity and mirror, the LiRA default A=2);
        "shiftK" for all shifts |dy|,|dx| <= K, with mirrors where allowed
        ("shift1" gives the reference's 18 queries on CIFAR, 9 on digits);
        "crossK" for identity plus shifts with |dy|+|dx| <= K (no mirror).
      mirror_ok: whether mirrored queries are label preserving for the dataset.
      tabular: the data are flat feature vectors: only "identity" is allowed.

    Returns:
      tuple of `Query`, identity first.

    Raises:
      ValueError: an unknown name, or a query other than identity for tabular data.
    """
    if tabular:
        check_tabular(spec, 0, False)
    mirrors = (False, True) if mirror_ok else (False,)
    if spec == "identity":
        return (Query(False, 0, 0),)
    if spec == "mirror":
        return tuple(Query(m, 0, 0) for m in mirrors)
    for prefix in ("shift", "cross"):
        if spec.startswith(prefix) and spec[len(prefix) :].isdigit():
            k = int(spec[len(prefix) :])
            shifts = [
                (dy, dx)
                for dy in range(-k, k + 1)
                for dx in range(-k, k + 1)
                if prefix == "shift" or abs(dy) + abs(dx) <= k
            ]
            shifts.sort(key=lambda s: (abs(s[0]) + abs(s[1]), s))  # identity first
            ms = mirrors if prefix == "shift" else (False,)
            return tuple(Query(m, dy, dx) for m in ms for dy, dx in shifts)
    raise ValueError(
        f"Unknown query set {spec!r}: use identity, mirror, shiftK or crossK (e.g. shift1, cross1)."
    )


def shift_image(x: jnp.ndarray, dy, dx, pad: int) -> jnp.ndarray:
    """Shifts images [..., H, W, C] by (dy, dx) with reflect padding; |dy|, |dx| <= pad."""
    h, w = x.shape[-3], x.shape[-2]
    widths = [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)]
    padded = jnp.pad(x, widths, mode="reflect")
    start = [0] * (x.ndim - 3) + [pad - dy, pad - dx, 0]
    return jax.lax.dynamic_slice(padded, start, x.shape[:-3] + (h, w, x.shape[-1]))


def apply_query(x: jnp.ndarray, q: Query) -> jnp.ndarray:
    """Applies one fixed query to a batch [B, H, W, C]."""
    if q.mirror:
        x = x[:, :, ::-1, :]
    pad = max(abs(q.dy), abs(q.dx))
    return shift_image(x, q.dy, q.dx, pad) if pad else x


def random_augment(key: jax.Array, x: jnp.ndarray, max_shift: int, mirror: bool) -> jnp.ndarray:
    """Random shift by up to `max_shift` pixels (and random mirror), per example.

    Args:
      key: JAX key.
      x: [B, H, W, C].
      max_shift: largest shift; 0 disables shifting.
      mirror: whether to mirror each example with probability 1/2.
    """
    if max_shift == 0 and not mirror:
        return x
    k_flip, k_shift = jax.random.split(key)
    if mirror:
        flip = jax.random.bernoulli(k_flip, 0.5, (x.shape[0],))
        x = jnp.where(flip[:, None, None, None], x[:, :, ::-1, :], x)
    if max_shift:
        shifts = jax.random.randint(k_shift, (x.shape[0], 2), -max_shift, max_shift + 1)
        x = jax.vmap(lambda img, s: shift_image(img, s[0], s[1], max_shift))(x, shifts)
    return x


def query_names(queries: tuple[Query, ...]) -> tuple[str, ...]:
    return tuple(q.name for q in queries)


def as_array(queries: tuple[Query, ...]) -> np.ndarray:
    """[A, 3] int array (mirror, dy, dx), e.g. for metadata."""
    return np.array([[int(q.mirror), q.dy, q.dx] for q in queries], dtype=np.int32)
