"""Shadow-model attack classifier (Shokri, Stronati, Song & Shmatikov, 2017).

Design notes: the attack model is a classifier, one per class, trained to tell the
shadow models' posteriors on their training examples (IN) from those on other examples
(OUT), then applied to the target's posteriors. As in "Why Train More?", each is an MLP
with one hidden layer of 64 ReLU units and a 2-way softmax output; the score is its
log-odds of IN (which orders examples like the IN probability but does not saturate).

  * Features: the posterior averaged over queries, as stored in the `SignalBank`:
    [p_y, other probabilities in decreasing order], K = min(C, 10) entries. For C <= 10
    this is the full posterior vector, permuted so that the label comes first; for larger
    C the tail is cut, which bounds the bank at [M, N, 10] float32.
  * Training data: for class c, `max_train_per_class` (2,000 by default) (model, example)
    pairs drawn with replacement, half IN and half OUT, from the shadow models' examples
    of class c; drawn with `numpy.random.default_rng([seed, fold, class])`.
  * Leave-one-model-out at bounded cost: the targets are split into `num_folds`
    contiguous folds (8 by default); the classifiers of a fold are trained on models
    outside the fold, so no target's own posteriors are in its attack model's training
    data. With at most `num_folds` targets this is exactly leave-one-out.
  * Equal-size shadow sets: for a fold F, each example contributes count_in − |F| IN and
    count_out − |F| OUT models (`shadow_sets.equalized_shadow_mask`: the fold's models and
    then random others, from `seed`, are left out of each group). With every model outside
    the fold, an example that the fold's targets trained on would bring fewer IN and more
    OUT pairs, and a classifier that learns the example's shared difficulty would then
    call the targets' members OUT (AUC 0.491 on stores without membership signal).
  * All folds × classes classifiers are trained at once, in one jitted `lax.scan` of
    minibatch Adam steps over arrays with a leading classifier axis (the vectorised form
    `jax.vmap` would give; written out so that each step is two batched matrix products,
    which XLA's CPU backend runs several times faster than full-batch training). The
    minibatch order comes from numpy with `seed`, the initial weights from
    `jax.random.key(seed)`. Cost: num_folds · C · max_train_per_class · num_epochs
    example-passes through a 10-64-2 MLP, about a second for 8 folds × 10 classes after a
    few seconds of compilation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lira_jax.attacks import shadow_sets
from lira_jax.attacks.bank import AttackOutput, AttackUndefined, SignalBank

__all__ = ["shokri_attack"]


def _init(key: jax.Array, num: int, num_features: int, hidden: int) -> dict:
    """He-initialised weights of `num` MLPs, stacked on a leading axis."""
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (num, num_features, hidden)) * jnp.sqrt(2.0 / num_features),
        "b1": jnp.zeros((num, 1, hidden)),
        "w2": jax.random.normal(k2, (num, hidden, 2)) * jnp.sqrt(1.0 / hidden),
        "b2": jnp.zeros((num, 1, 2)),
    }


def _logits(params: dict, x, xp=jnp):
    """x: [B, P, K] -> [B, P, 2] logits of the B classifiers (xp: jax.numpy or numpy)."""
    h = xp.maximum(xp.einsum("bpk,bkh->bph", x, params["w1"]) + params["b1"], 0.0)
    return xp.einsum("bph,bho->bpo", h, params["w2"]) + params["b2"]


@functools.partial(jax.jit, static_argnames=("hidden",))
def _train(key, x, y, batches, learning_rate, *, hidden: int):
    """Trains B classifiers at once with minibatch Adam.

    Written with an explicit leading classifier axis (what `jax.vmap` would produce) so
    that each step is two batched matrix products; the summed loss has independent
    gradients per classifier and Adam is elementwise, so the B trainings do not interact.

    Args:
      key: PRNG key of the initial weights.
      x: [B, P, K] float32 features.
      y: [B, P] int32 labels (1 = IN).
      batches: [steps, B, batch] int32 indices into P, one minibatch per step.
      learning_rate: Adam learning rate (a traced scalar: changing it does not recompile).

    Returns:
      (params with a leading [B] axis, [B] training accuracy).
    """
    opt = optax.adam(learning_rate)
    params = _init(key, x.shape[0], x.shape[-1], hidden)

    def loss_fn(p, xb, yb):
        per_example = optax.softmax_cross_entropy_with_integer_labels(_logits(p, xb), yb)
        return per_example.mean(axis=1).sum()

    def step(carry, idx):
        p, state = carry
        xb = jnp.take_along_axis(x, idx[..., None], axis=1)
        yb = jnp.take_along_axis(y, idx, axis=1)
        updates, state = opt.update(jax.grad(loss_fn)(p, xb, yb), state, p)
        return (optax.apply_updates(p, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), batches)
    accuracy = jnp.mean(jnp.argmax(_logits(params, x), axis=-1) == y, axis=1)
    return params, accuracy


def _training_set(
    bank: SignalBank, use: np.ndarray, cols: np.ndarray, size: int, rng, c: int, fold: int
) -> tuple[np.ndarray, np.ndarray]:
    """`size` features [size, K] and labels (half IN, half OUT) for one class and fold.

    `use` [M, N] bool marks the (model, example) pairs the fold may train on.
    """
    allowed = use[:, cols]
    feats, labels = [], []
    for label, mask in ((1, bank.keep[:, cols]), (0, ~bank.keep[:, cols])):
        models, examples = np.nonzero(mask & allowed)
        if models.size == 0:
            raise AttackUndefined(
                f"shokri: class {c} has no {'IN' if label else 'OUT'} shadow example outside "
                f"target fold {fold}; train more shadow models."
            )
        n = size // 2 if label else size - size // 2
        pick = rng.integers(0, models.size, n)
        feats.append(bank.posteriors[models[pick], cols[examples[pick]]])
        labels.append(np.full(n, label, np.int32))
    return np.concatenate(feats), np.concatenate(labels)


def shokri_attack(
    bank: SignalBank,
    targets: np.ndarray,
    *,
    max_train_per_class: int = 2048,
    hidden_units: int = 64,
    num_epochs: int = 20,
    batch_size: int = 128,
    learning_rate: float = 1e-2,
    num_folds: int = 8,
    seed: int = 0,
) -> AttackOutput:
    """Per-class attack-classifier scores of each target.

    Args:
      bank: a `SignalBank` with posteriors [M, N, K] and labels.
      targets: [T] target model indices.
      max_train_per_class: training pairs per class classifier (half IN, half OUT).
      hidden_units: width of the hidden layer.
      num_epochs: passes over the training pairs.
      batch_size: minibatch size (at most max_train_per_class).
      learning_rate: Adam learning rate.
      num_folds: the targets are split into this many folds (see the module docstring).
      seed: seed of the shadow sets, the sampling, the minibatch order and the initial
        weights.

    Returns:
      `AttackOutput` with scores [T, N] (log-odds of IN), threshold 0 (P(IN) >= ½), and
      extras {"train_accuracy", "num_folds", "train_pairs_per_class"}.

    Raises:
      AttackUndefined: if a class has no IN or no OUT example among a fold's shadows.
    """
    bank.require(["posteriors", "labels"], "shokri")
    targets = bank.check_targets(targets)
    if not (2 <= batch_size <= max_train_per_class and num_epochs >= 1 and num_folds >= 1):
        raise ValueError(
            "Need 2 <= batch_size <= max_train_per_class, num_epochs >= 1, num_folds >= 1; got "
            f"{batch_size=}, {max_train_per_class=}, {num_epochs=}, {num_folds=}."
        )
    classes = np.unique(bank.labels)
    class_cols = [np.flatnonzero(bank.labels == c) for c in classes]
    folds = [f for f in np.array_split(targets, min(num_folds, targets.size)) if f.size]

    x, y = [], []
    for f, fold in enumerate(folds):
        use = shadow_sets.fold_shadow_mask(bank, fold, seed)
        for c, cols in zip(classes, class_cols, strict=True):
            rng = np.random.default_rng([seed, f, int(c)])
            feats, labels = _training_set(bank, use, cols, max_train_per_class, rng, int(c), f)
            x.append(feats)
            y.append(labels)
    num = len(x)
    steps = max_train_per_class // batch_size
    order = np.random.default_rng([seed, 1 << 20]).permuted(
        np.broadcast_to(np.arange(max_train_per_class), (num_epochs, num, max_train_per_class)),
        axis=-1,
    )
    batches = order[..., : steps * batch_size].reshape(num_epochs, num, steps, batch_size)
    batches = batches.transpose(0, 2, 1, 3).reshape(num_epochs * steps, num, batch_size)
    params, accuracy = _train(
        jax.random.key(seed),
        jnp.asarray(np.stack(x)),
        jnp.asarray(np.stack(y)),
        jnp.asarray(batches, dtype=jnp.int32),
        jnp.float32(learning_rate),
        hidden=hidden_units,
    )
    params = jax.tree.map(np.asarray, params)

    scores = np.empty((targets.size, bank.num_examples))
    start = 0
    for f, fold in enumerate(folds):
        rows = slice(start, start + fold.size)
        for j, cols in enumerate(class_cols):
            b = f * classes.size + j
            one = {k: v[b : b + 1] for k, v in params.items()}
            feats = bank.posteriors[fold[:, None], cols[None, :]]  # [T_f, N_c, K]
            out = _logits(one, feats.reshape(1, -1, feats.shape[-1]), np)[0].astype(np.float64)
            scores[rows, cols] = (out[:, 1] - out[:, 0]).reshape(fold.size, cols.size)
        start += fold.size
    extras = {
        "train_accuracy": float(np.mean(accuracy)),
        "num_folds": len(folds),
        "train_pairs_per_class": int(max_train_per_class),
    }
    return AttackOutput(scores=scores, threshold=0.0, extras=extras)
