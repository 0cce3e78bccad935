"""CIFAR-shaped synthetic images: the size of CIFAR-10, something to learn, no files.

`cifar_synth` (in the dataset registry) stands in for CIFAR-10 where no prepared copy is
available (an accelerator machine without network, CI): 50,000 training and 10,000 test
images of 32 x 32 x 3 in [0, 1], 10 classes. It is built so that what a shadow model does
on it resembles what it does on natural images, at the same cost: models learn (test
accuracy well above chance, below 100 %), and they memorise (a tenth of the labels are
noise that only memorisation fits, so membership leaves a signal for the attacks).

The contract, exactly (numpy's `default_rng`, float64 arithmetic, then float32):

- Prototypes: `rng = default_rng([seed, 0])`; `coarse = rng.standard_normal((10, 4, 4, 4,
  3))` ([class, prototype, 4, 4, channel]); each 4 x 4 x 3 pattern is upsampled to 32 x 32
  by repeating every value 8 x 8, then blurred by a 9-tap box filter along each image axis
  with wrap-around; then each prototype is scaled to unit standard deviation.
- Example i of split s (0 train, 1 test) is drawn in chunks of `CHUNK` = 1,000: chunk
  k = i // 1000 uses `rng = default_rng([seed, 1 + s, k])` and draws, in this order, for its
  1,000 examples: the class `integers(0, 10, 1000)`, the prototype `integers(0, 4, 1000)`,
  shifts `integers(-4, 5, (1000, 2))` (dy, dx), a contrast `uniform(0.5, 1.5, 1000)`, the
  pixel noise `standard_normal((1000, 32, 32, 3))`, a label-noise coin
  `uniform(size=1000) < LABEL_NOISE` and a replacement label `integers(0, 10, 1000)`.
- image = clip(0.5 + AMPLITUDE * contrast * roll(prototype, (dy, dx)) + NOISE * noise, 0, 1)
  with `AMPLITUDE` = 0.08, `NOISE` = 0.2; the label is the class, or the replacement label
  where the coin came up (on the test split too: a natural dataset's labels are noisy).

So the first n examples of a split do not depend on how many are asked for, and the dataset
is a pure function of the seed.
"""

from __future__ import annotations

import numpy as np

NUM_TRAIN, NUM_TEST, NUM_CLASSES = 50_000, 10_000, 10
SHAPE = (32, 32, 3)
PROTOTYPES = 4
CHUNK = 1_000
AMPLITUDE, NOISE, LABEL_NOISE = 0.08, 0.2, 0.1
MAX_SHIFT = 4


def prototypes(seed: int = 0) -> np.ndarray:
    """[10, PROTOTYPES, 32, 32, 3] smooth unit-variance patterns (see the module docstring)."""
    rng = np.random.default_rng([seed, 0])
    coarse = rng.standard_normal((NUM_CLASSES, PROTOTYPES, 4, 4, 3))
    fine = coarse.repeat(8, axis=2).repeat(8, axis=3)
    for axis in (2, 3):
        fine = sum(np.roll(fine, d, axis=axis) for d in range(-4, 5)) / 9.0
    return fine / fine.std(axis=(2, 3, 4), keepdims=True)


def _chunk(protos: np.ndarray, seed: int, split: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 1 + split, k])
    cls = rng.integers(0, NUM_CLASSES, CHUNK)
    proto = rng.integers(0, PROTOTYPES, CHUNK)
    shift = rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, (CHUNK, 2))
    contrast = rng.uniform(0.5, 1.5, CHUNK)
    noise = rng.standard_normal((CHUNK, *SHAPE))
    flip = rng.uniform(size=CHUNK) < LABEL_NOISE
    other = rng.integers(0, NUM_CLASSES, CHUNK)
    images = np.empty((CHUNK, *SHAPE), np.float32)
    for j in range(CHUNK):
        pattern = np.roll(protos[cls[j], proto[j]], tuple(shift[j]), axis=(0, 1))
        images[j] = np.clip(0.5 + AMPLITUDE * contrast[j] * pattern + NOISE * noise[j], 0, 1)
    return images, np.where(flip, other, cls).astype(np.int32)


def split(num: int, which: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The first `num` examples of split `which` (0 train, 1 test): images [num, 32, 32, 3]
    float32 in [0, 1] and labels [num] int32."""
    if num < 1:
        raise ValueError(f"num={num} must be >= 1.")
    protos = prototypes(seed)
    parts = [_chunk(protos, seed, which, k) for k in range(-(-num // CHUNK))]
    images = np.concatenate([p[0] for p in parts])[:num]
    labels = np.concatenate([p[1] for p in parts])[:num]
    return images, labels


def cifar_like(num_train: int = NUM_TRAIN, seed: int = 0):
    """(x_train, y_train, x_test, y_test): the first `num_train` (<= 50,000) training
    examples and all 10,000 test examples."""
    if not 1 <= num_train <= NUM_TRAIN:
        raise ValueError(f"num_train={num_train} must be in [1, {NUM_TRAIN}].")
    return (*split(num_train, 0, seed), *split(NUM_TEST, 1, seed))
