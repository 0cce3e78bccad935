"""Image augmentations: the train-time random ones and the fixed query set.

Design notes: both are shifts by reflect-padding and cropping, plus an optional
horizontal mirror (only where the dataset's labels are mirror invariant). Train
augmentation is a pure function of a JAX key, so it vmaps over models with a key
per model. Queries are named `(mirror, dy, dx, angle)` tuples; their names go into the
store so an analysis knows what each of the A logit slices is (a query without rotation
keeps the name it had before rotations existed, so older stores still open). The query
sets of the label-only augmentation attack (Choquette-Choo et al. 2021) are `ringD`
(translations by exactly D pixels in L1) and `rotR` (rotations by every integer angle in
[−R, R] degrees); `+` combines sets. Rotations resample bilinearly on the device
(`rotate_image`). Tabular data (flat
feature vectors) has neither: only the identity query, and no train augmentation
(`check_tabular`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Query(NamedTuple):
    """One fixed query: mirror, then rotate by `angle` degrees, then shift by (dy, dx).

    Attributes:
      mirror: horizontal flip.
      dy, dx: shift in pixels (+1 moves the content down / right).
      angle: rotation in degrees, counter-clockwise as displayed (scipy's convention).
    """

    mirror: bool
    dy: int
    dx: int
    angle: float = 0.0

    @property
    def name(self) -> str:
        base = f"{'mirror' if self.mirror else 'id'}_dy{self.dy:+d}_dx{self.dx:+d}"
        return f"{base}_rot{self.angle:+g}" if self.angle else base


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
        "crossK" for identity plus shifts with |dy|+|dx| <= K (no mirror);
        "ringD" for identity plus the 4D shifts with |dy|+|dx| = D exactly (ring1 =
        cross1); "rotR" for rotations by every integer angle in [-R, R] degrees (2R+1
        queries, identity among them); "A+B" for the queries of A then those of B, each
        once, identity first (e.g. "ring2+rot4", 1 + 8 + 8 = 17 queries).
      mirror_ok: whether mirrored queries are label preserving for the dataset.
      tabular: the data are flat feature vectors: only "identity" is allowed.

    Returns:
      tuple of `Query`, identity first.

    Raises:
      ValueError: an unknown name, or a query other than identity for tabular data.
    """
    if tabular:
        check_tabular(spec, 0, False)
    if "+" in spec:
        parts = [query_set(part, mirror_ok) for part in spec.split("+")]
        merged = dict.fromkeys([Query(False, 0, 0)] + [q for p in parts for q in p])
        return tuple(merged)
    if spec.startswith("rot") and spec[3:].isdigit():
        r = int(spec[3:])
        angles = sorted(range(-r, r + 1), key=lambda a: (abs(a), a))  # identity first
        return tuple(Query(False, 0, 0, float(a)) for a in angles)
    mirrors = (False, True) if mirror_ok else (False,)
    if spec == "identity":
        return (Query(False, 0, 0),)
    if spec == "mirror":
        return tuple(Query(m, 0, 0) for m in mirrors)
    for prefix in ("shift", "cross", "ring"):
        if spec.startswith(prefix) and spec[len(prefix) :].isdigit():
            k = int(spec[len(prefix) :])
            # The L1 lengths |dy| + |dx| each set admits.
            lengths = {"shift": range(2 * k + 1), "cross": range(k + 1), "ring": {0, k}}[prefix]
            shifts = [
                (dy, dx)
                for dy in range(-k, k + 1)
                for dx in range(-k, k + 1)
                if abs(dy) + abs(dx) in lengths
            ]
            shifts.sort(key=lambda s: (abs(s[0]) + abs(s[1]), s))  # identity first
            ms = mirrors if prefix == "shift" else (False,)
            return tuple(Query(m, dy, dx) for m in ms for dy, dx in shifts)
    raise ValueError(
        f"Unknown query set {spec!r}: use identity, mirror, shiftK, crossK, ringD or rotR, "
        "or several joined by '+' (e.g. shift1, cross1, ring2+rot4)."
    )


def shift_image(x: jnp.ndarray, dy, dx, pad: int) -> jnp.ndarray:
    """Shifts images [..., H, W, C] by (dy, dx) with reflect padding; |dy|, |dx| <= pad."""
    h, w = x.shape[-3], x.shape[-2]
    widths = [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)]
    padded = jnp.pad(x, widths, mode="reflect")
    start = [0] * (x.ndim - 3) + [pad - dy, pad - dx, 0]
    return jax.lax.dynamic_slice(padded, start, x.shape[:-3] + (h, w, x.shape[-1]))


def rotation_coordinates(height: int, width: int, angle: float) -> np.ndarray:
    """Where each output pixel of a rotation by `angle` degrees samples its input.

    The rotation is about the image centre ((H-1)/2, (W-1)/2) and keeps the shape: the
    mapping of `scipy.ndimage.rotate(..., reshape=False)` on the (row, column) axes.

    Returns:
      [2, H, W] float64 input (row, column) coordinates.
    """
    theta = np.deg2rad(angle)
    c, s = np.cos(theta), np.sin(theta)
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    cy, cx = (height - 1) / 2, (width - 1) / 2
    dy, dx = rows - cy, cols - cx
    return np.stack([c * dy + s * dx + cy, -s * dy + c * dx + cx])


def rotate_image(x: jnp.ndarray, angle: float) -> jnp.ndarray:
    """Rotates images [..., H, W, C] by `angle` degrees (counter-clockwise as displayed).

    Bilinear resampling (`jax.scipy.ndimage.map_coordinates`, order 1) on the device.
    Edges: an output pixel whose source falls outside the image takes the value of the
    nearest edge pixel (mode "nearest"), so no constant such as 0 (which is not the
    background once images are standardised) is blended in. Equals
    `scipy.ndimage.rotate(x, angle, axes=(H, W), reshape=False, order=1, mode="nearest")`
    up to float32 rounding. (Choquette-Choo et al.'s code used scipy's `rotate` with
    `reshape=False` and its default edge mode, "constant" 0, on unstandardised images.)
    """
    if not angle:
        return x
    h, w = x.shape[-3], x.shape[-2]
    coords = jnp.asarray(rotation_coordinates(h, w, angle), x.dtype)

    def one(plane):  # [H, W]
        return jax.scipy.ndimage.map_coordinates(plane, list(coords), order=1, mode="nearest")

    planes = jnp.moveaxis(x, -1, -3).reshape((-1, h, w))  # [..., C, H, W] flattened
    out = jax.vmap(one)(planes).reshape(x.shape[:-3] + (x.shape[-1], h, w))
    return jnp.moveaxis(out, -3, -1)


def apply_query(x: jnp.ndarray, q: Query) -> jnp.ndarray:
    """Applies one fixed query to a batch [B, H, W, C]: mirror, rotate, then shift."""
    if q.mirror:
        x = x[:, :, ::-1, :]
    x = rotate_image(x, q.angle)
    pad = max(abs(q.dy), abs(q.dx))
    return shift_image(x, q.dy, q.dx, pad) if pad else x


def query_views(x: jnp.ndarray, queries: tuple[Query, ...]) -> jnp.ndarray:
    """Every query of a batch, as the query pass computes them: [B, ...] -> [B, A, ...]."""
    return jnp.stack([apply_query(x, q) for q in queries], axis=1)


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
    """[A, 4] float64 array (mirror, dy, dx, angle), e.g. for metadata."""
    return np.array([[int(q.mirror), q.dy, q.dx, q.angle] for q in queries], dtype=np.float64)
