"""Mixtures of an over-represented base dataset with an under-represented group.

"Why Train More?" (§4, §7) trains on a base dataset (e.g. MNIST) plus a small group from a
second source (augMNIST, SVHN, CIFAR-10), chosen in one of three ways, and asks which
examples attacks expose:

  * ``random``: a class-balanced random subset of the OOD source;
  * ``subpopulation``: the smallest KMeans cluster (after PCA) of penultimate-layer
    features, of a random OOD subset, under a model trained on the base (Jagielski et al.);
  * ``singletons``: OOD examples whose Feldman–Zhang memorization, estimated in a first run
    on base + random OOD, exceeds a threshold.

Images of the group are converted to the base's format first (`convert_images`: bilinear
resize, RGB → gray as 0.299R + 0.587G + 0.114B), labels are kept (class k of both sources is
label k, "consistent labels"), and the pool is the base followed by the group. The OOD
source ``aug`` is an AugMix-style corruption of the base itself (`augmix`: each image
mixed with random chains of geometric and photometric operations; covariate shift, in the
spirit of the paper's augMNIST, without its external fractal images).

Design notes: every function here is pure (numpy in, numpy out, randomness from explicit
seeds or keys), works on raw [0, 1] images (standardisation happens once, on the mixed
pool, in the dataset registry), and selections return indices into the OOD source so a
store can record where each pool example came from (`source_index`). Image work runs on
the device in fixed-size chunks (one compiled shape).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "GROUP_NAMES",
    "MIXTURES",
    "Mixture",
    "augmix",
    "balanced_indices",
    "convert_images",
    "mix",
    "select_singletons",
    "select_subpopulation",
    "to_gray",
]

MIXTURES = ("none", "random", "subpopulation", "singletons")
GROUP_NAMES = ("over_represented", "under_represented")
_GRAY = np.array([0.299, 0.587, 0.114], np.float32)
_CHUNK = 512
_AUGMIX_CHUNK = 64


def to_gray(x: np.ndarray) -> np.ndarray:
    """[n, H, W, 3] RGB → [n, H, W, 1] gray (ITU-R 601 luma); 1 channel passes through."""
    x = np.asarray(x, np.float32)
    if x.shape[-1] == 1:
        return x
    if x.shape[-1] != 3:
        raise ValueError(f"images must have 1 or 3 channels, got shape {x.shape}.")
    return (x @ _GRAY)[..., None]


@functools.partial(jax.jit, static_argnums=(1,))
def _resize(x: jax.Array, hw: tuple[int, int]) -> jax.Array:
    return jax.image.resize(x, (x.shape[0], *hw, x.shape[-1]), "bilinear", antialias=True)


def _chunked(fn, x: np.ndarray, *args) -> np.ndarray:
    """Applies a jitted `fn(chunk, *args)` over fixed-size chunks (the tail padded)."""
    out = []
    for s in range(0, x.shape[0], _CHUNK):
        part = x[s : s + _CHUNK]
        n = part.shape[0]
        if n < _CHUNK and x.shape[0] > _CHUNK:
            part = np.concatenate([part, np.zeros((_CHUNK - n,) + part.shape[1:], part.dtype)])
        out.append(np.asarray(fn(jnp.asarray(part), *args))[:n])
    return np.concatenate(out) if out else x


def convert_images(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Raw [0, 1] images → the base's [H, W, C]: gray (if C = 1), then bilinear resize.

    Args:
      x: [n, h, w, c] float in [0, 1], c ∈ {1, 3}.
      shape: the base's (H, W, C), C ∈ {1, 3} (gray is repeated to 3 channels).

    Returns:
      [n, H, W, C] float32 in [0, 1] (clipped: antialiasing can overshoot by rounding).
    """
    h, w, c = shape
    x = np.asarray(x, np.float32)
    if x.ndim != 4:
        raise ValueError(f"images must be [n, H, W, C], got shape {x.shape}.")
    if c == 1:
        x = to_gray(x)
    elif c == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif x.shape[-1] != c:
        raise ValueError(f"cannot convert {x.shape[-1]}-channel images to {c} channels.")
    if x.shape[1:3] != (h, w):
        x = _chunked(_resize, x, (h, w))
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def balanced_indices(labels: np.ndarray, size: int, num_classes: int, seed: int) -> np.ndarray:
    """`size` indices, size / num_classes of each class, drawn at random (sorted).

    Raises:
      ValueError: size is not a positive multiple of num_classes, or a class has too few
        examples.
    """
    labels = np.asarray(labels)
    if size < num_classes or size % num_classes:
        raise ValueError(
            f"ood_size={size} must be a positive multiple of the {num_classes} classes, so the "
            "group is balanced over classes."
        )
    per = size // num_classes
    rng = np.random.default_rng(seed)
    picks = []
    for k in range(num_classes):
        members = np.flatnonzero(labels == k)
        if members.size < per:
            raise ValueError(
                f"class {k} has {members.size} examples in the OOD source, fewer than the "
                f"{per} per class that ood_size={size} needs; lower ood_size."
            )
        picks.append(rng.choice(members, per, replace=False))
    return np.sort(np.concatenate(picks))


def select_subpopulation(
    features: np.ndarray, pca_dims: int = 10, num_clusters: int = 5, seed: int = 0
) -> np.ndarray:
    """Indices (into `features`) of the smallest KMeans cluster after PCA.

    Args:
      features: [n, d] penultimate-layer features of the candidates.
      pca_dims: PCA dimensions (the paper: 10); capped at min(n, d).
      num_clusters: KMeans clusters (the paper: 5).
      seed: PCA/KMeans random state.

    Returns:
      Sorted indices of the members of the smallest cluster (ties: the lowest cluster id).
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < num_clusters:
        raise ValueError(
            f"features must be [n, d] with n >= num_clusters={num_clusters}, got {features.shape}."
        )
    if pca_dims < 1 or num_clusters < 2:
        raise ValueError(f"pca_dims={pca_dims} must be >= 1 and num_clusters={num_clusters} >= 2.")
    dims = min(pca_dims, *features.shape)
    z = PCA(n_components=dims, random_state=seed).fit_transform(features)
    labels = KMeans(n_clusters=num_clusters, n_init=10, random_state=seed).fit_predict(z)
    sizes = np.bincount(labels, minlength=num_clusters)
    sizes[sizes == 0] = np.iinfo(np.int64).max  # an empty cluster is not a subpopulation
    return np.flatnonzero(labels == int(np.argmin(sizes)))


def select_singletons(memorization: np.ndarray, threshold: float) -> np.ndarray:
    """Indices (into `memorization`) of the examples with memorization > threshold.

    Raises:
      ValueError: none exceeds the threshold (say so rather than train on an empty group).
    """
    memorization = np.asarray(memorization, np.float64)
    chosen = np.flatnonzero(memorization > threshold)
    if chosen.size == 0:
        raise ValueError(
            f"no OOD example has memorization > singleton_threshold={threshold} (max "
            f"{np.nanmax(memorization):.3f}); lower the threshold or train the first store longer."
        )
    return chosen


# -- AugMix-style corruption ------------------------------------------------------------


def _affine(img: jax.Array, matrix: jax.Array) -> jax.Array:
    """Samples img [H, W, C] at `matrix @ (y, x, 1)` about the centre; bilinear, zeros outside."""
    h, w = img.shape[:2]
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32))
    cy, cx = (h - 1) / 2, (w - 1) / 2
    coords = jnp.stack([yy.T - cy, xx.T - cx, jnp.ones((h, w))])  # [3, H, W]
    src = jnp.einsum("ij,jhw->ihw", matrix, coords)
    sy, sx = src[0] + cy, src[1] + cx
    return jnp.stack(
        [
            jax.scipy.ndimage.map_coordinates(img[..., c], [sy, sx], order=1, cval=0.0)
            for c in range(img.shape[-1])
        ],
        axis=-1,
    )


def _geometry(op: jax.Array, m: jax.Array, h: int, w: int) -> jax.Array:
    """The 2x3 sampling matrix of geometric operation `op` (rotate, shear x/y, translate
    x/y) at signed magnitude m: rotations up to 30°, shears up to 0.3, shifts up to 1/3 of
    the image."""
    a = jnp.deg2rad(30.0 * m)
    c, s = jnp.cos(a), jnp.sin(a)
    zero, one = jnp.zeros_like(m), jnp.ones_like(m)
    mats = jnp.stack(
        [
            jnp.array([[c, -s, zero], [s, c, zero]]),
            jnp.array([[one, zero, zero], [0.3 * m, one, zero]]),
            jnp.array([[one, 0.3 * m, zero], [zero, one, zero]]),
            jnp.array([[one, zero, zero], [zero, one, w / 3 * m]]),
            jnp.array([[one, zero, h / 3 * m], [zero, one, zero]]),
        ]
    )
    return mats[op]


def _autocontrast(img, m):
    del m
    lo, hi = img.min(axis=(0, 1)), img.max(axis=(0, 1))
    return jnp.where(hi > lo, (img - lo) / jnp.maximum(hi - lo, 1e-6), img)


def _equalize(img, m):
    del m  # Histogram equalisation over 256 levels, per channel.
    q = jnp.clip(jnp.round(img * 255), 0, 255).astype(jnp.int32)
    hist = jax.vmap(lambda c: jnp.bincount(c.ravel(), length=256), in_axes=-1, out_axes=-1)(q)
    cdf = jnp.cumsum(hist, axis=0) / (img.shape[0] * img.shape[1])
    return jnp.take_along_axis(cdf, q.reshape(-1, img.shape[-1]), axis=0).reshape(img.shape)


def _posterize(img, m):
    bits = 4 - jnp.floor(4 * jnp.abs(m)).astype(jnp.int32).clip(0, 3)  # 4..1 bits
    levels = (2**bits).astype(jnp.float32)
    return jnp.floor(img * levels) / levels


def _solarize(img, m):
    threshold = 1.0 - jnp.abs(m)
    return jnp.where(img >= threshold, 1.0 - img, img)


_PHOTOMETRIC = (_autocontrast, _equalize, _posterize, _solarize)
_NUM_GEOMETRIC = 5
_NUM_OPS = len(_PHOTOMETRIC) + _NUM_GEOMETRIC
_STEPS = 3


def _apply_op(img: jax.Array, op: jax.Array, m: jax.Array) -> jax.Array:
    """Operation `op` (0-3 photometric, 4-8 geometric) at signed magnitude m. Vmapped over
    images every branch is computed anyway, so the geometric ones share one resampling."""
    h, w = img.shape[:2]
    geo = _affine(img, _geometry(jnp.clip(op - len(_PHOTOMETRIC), 0, _NUM_GEOMETRIC - 1), m, h, w))
    photo = jnp.stack([f(img, m) for f in _PHOTOMETRIC])[jnp.clip(op, 0, len(_PHOTOMETRIC) - 1)]
    return jnp.where(op >= len(_PHOTOMETRIC), geo, photo)


def _augmix_one(key, img, severity: int, width: int, depth: int, alpha: float):
    level = severity / 10.0
    k_w, k_m, k_chain = jax.random.split(key, 3)
    weights = jax.random.dirichlet(k_w, jnp.full((width,), alpha))
    m = jax.random.beta(k_m, alpha, alpha)

    def chain(k):
        k_depth, k_ops = jax.random.split(k)
        n_ops = jax.random.randint(k_depth, (), 1, _STEPS + 1) if depth <= 0 else depth
        keys = jax.random.split(k_ops, _STEPS)

        def step(x, inputs):
            i, ki = inputs
            k_op, k_mag, k_sign = jax.random.split(ki, 3)
            op = jax.random.randint(k_op, (), 0, _NUM_OPS)
            mag = jax.random.uniform(k_mag, (), minval=0.1, maxval=max(level, 0.1))
            mag = mag * jnp.where(jax.random.bernoulli(k_sign), 1.0, -1.0)
            return jnp.where(i < n_ops, _apply_op(x, op, mag), x), None

        out, _ = jax.lax.scan(step, img, (jnp.arange(_STEPS), keys))
        return out

    chains = jax.vmap(chain)(jax.random.split(k_chain, width))  # [width, H, W, C]
    mixed = jnp.einsum("k,khwc->hwc", weights, chains)
    return jnp.clip((1 - m) * img + m * mixed, 0.0, 1.0)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _augmix_chunk(x, keys, severity, width, depth, alpha):
    return jax.vmap(lambda k, im: _augmix_one(k, im, severity, width, depth, alpha))(keys, x)


def augmix(
    x: np.ndarray,
    seed: int,
    severity: int = 3,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
) -> np.ndarray:
    """AugMix-style corruption (Hendrycks et al. 2020) of raw [0, 1] images.

    Each image is mixed with `width` chains of 1–3 random operations (`depth` <= 0) or
    exactly `depth`: autocontrast, equalize, posterize, rotate (≤ 30°·s), solarize, shear
    (≤ 0.3·s), translate (≤ size/3·s), with s = severity / 10 and a random sign and
    magnitude in [0.1, s]; chain weights ~ Dirichlet(alpha), then (1 − m)·x + m·mix,
    m ~ Beta(alpha, alpha). Geometric operations resample bilinearly with zeros outside
    the image. Image i's randomness is `fold_in(PRNGKey(seed), i)`, so the result does not
    depend on chunking.

    Args:
      x: [n, H, W, C] float in [0, 1].
      seed: the corruption's seed.
      severity: 1..10.

    Returns:
      [n, H, W, C] float32 in [0, 1].
    """
    if not 1 <= severity <= 10:
        raise ValueError(f"augmix severity={severity} must be in 1..10.")
    if width < 1:
        raise ValueError(f"augmix width={width} must be >= 1.")
    x = np.asarray(x, np.float32)
    base = jax.random.PRNGKey(seed)
    keys = np.asarray(jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(x.shape[0])))
    out = []
    for s in range(0, x.shape[0], _AUGMIX_CHUNK):  # one compiled shape: the tail is padded
        part, kp = x[s : s + _AUGMIX_CHUNK], keys[s : s + _AUGMIX_CHUNK]
        n, pad = part.shape[0], _AUGMIX_CHUNK - part.shape[0]
        part = np.concatenate([part, np.zeros((pad,) + part.shape[1:], part.dtype)])
        kp = np.concatenate([kp, np.zeros((pad,) + kp.shape[1:], kp.dtype)])
        args = (jnp.asarray(part), jnp.asarray(kp), severity, width, depth, alpha)
        out.append(np.asarray(_augmix_chunk(*args))[:n])
    return np.concatenate(out).astype(np.float32)


# -- the mixed pool ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mixture:
    """A membership pool: the base's examples, then the under-represented group.

    Attributes:
      x: [N, H, W, C] raw [0, 1] images.
      y: [N] int32 labels (consistent across sources).
      groups: [N] int32, index into `GROUP_NAMES` (0 over-, 1 under-represented).
      source_index: [N] int64, the example's index in its own source (base or OOD).
    """

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    source_index: np.ndarray


def mix(
    base_x: np.ndarray,
    base_y: np.ndarray,
    ood_x: np.ndarray,
    ood_y: np.ndarray,
    ood_indices: np.ndarray,
) -> Mixture:
    """The base pool followed by the chosen OOD examples (already in the base's format).

    Raises:
      ValueError: the OOD images' shape differs from the base's (convert them first).
    """
    ood_indices = np.asarray(ood_indices, np.int64)
    if ood_x.shape[1:] != base_x.shape[1:]:
        raise ValueError(
            f"OOD images {ood_x.shape[1:]} differ from the base's {base_x.shape[1:]}; "
            "convert them with convert_images first."
        )
    n_base, n_ood = base_x.shape[0], ood_indices.size
    return Mixture(
        x=np.concatenate([base_x, ood_x[ood_indices]]).astype(np.float32),
        y=np.concatenate([base_y, ood_y[ood_indices]]).astype(np.int32),
        groups=np.r_[np.zeros(n_base, np.int32), np.ones(n_ood, np.int32)],
        source_index=np.r_[np.arange(n_base, dtype=np.int64), ood_indices],
    )
