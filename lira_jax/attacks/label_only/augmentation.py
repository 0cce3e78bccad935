"""The data-augmentation attack (Choquette-Choo et al. 2021) and a label-only LiRA.

Design notes: the feature of a (model, example) pair is its 0/1 correctness vector over
the store's A queries (e.g. `ring1+rot9`: translations by one pixel and rotations by up to
9 degrees, `lira_jax.data.augment.query_set`): a model labels its training examples
correctly under more perturbations. Three scorers of the target's vector:

  * count (`augmentation_count_attack`): the number of correct labels. Its operating point
    is a threshold tuned on the shadow models' (model, example) pairs — the count that
    maximises TPR − FPR there — as Choquette-Choo et al. tune theirs on a source model.
  * attack model (`augmentation_model_attack`): Choquette-Choo et al.'s learned attack, a
    small MLP (A → hidden → 1) trained on the shadows' vectors with their IN/OUT truth,
    one per target. The vectors are binary, so the training set is summarised exactly by
    the IN and OUT counts of each distinct vector (pattern); the weighted cross-entropy
    over the P ≤ 2^A patterns equals the one over the (M − 2)·N pairs, and all targets'
    models train at once (vmapped, full batch, Adam, fixed steps). Classes are weighted
    equally, so score ≥ 0 (P(IN) ≥ ½) is the operating point.
  * label-only LiRA (`augmentation_lira_attack`, beyond the papers): per example and
    query, P(correct | IN) and P(correct | OUT) estimated from the shadows' counts with a
    Beta(α, β) prior, (k + α) / (n + α + β), so 0 and 1 stay finite; the score is the sum
    over queries of the log-likelihood ratio of the target's correctness (queries treated
    as independent given membership). Score ≥ 0 is the operating point.

Shadow sets: for target t and example n, all models but t and one model dropped from the
group t is not in, so the IN and OUT sets have sizes that do not depend on t's membership
(`_shadows`); the attack model and the count threshold pool those sets over examples,
LiRA uses them per example. Totals over all M models are computed once and each target's
two removed models subtracted.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lira_jax.attacks.bank import AttackOutput, AttackUndefined
from lira_jax.attacks.label_only import _shadows
from lira_jax.attacks.label_only.labels import label_bank

_TARGET_CHUNK = 16  # attack models trained at once

__all__ = [
    "augmentation_count_attack",
    "augmentation_lira_attack",
    "augmentation_model_attack",
]


def _setup(bank, targets, seed):
    labels_only = label_bank(bank)
    targets = labels_only.check_targets(targets)
    removed = labels_only.cached(
        ("removed_models", targets.tobytes(), int(seed)),
        lambda: _shadows.removed_models(labels_only.keep, targets, seed),
    )
    return labels_only, targets, removed


def augmentation_count_attack(bank, targets: np.ndarray, *, seed: int = 0) -> AttackOutput:
    """Number of queries the target labels correctly; threshold tuned on shadow models.

    Shadow sets: every model but the target and one equalising model per example (see the
    module docstring); they only set the operating point, not the scores.

    Args:
      bank: a `LabelBank` or a `SignalBank` with predicted labels.
      targets: [T] target model indices.
      seed: chooses the equalising models.

    Returns:
      `AttackOutput` with scores [T, N] = correct count in 0..A, threshold [T, 1] the
      shadow-tuned count, extras {"mean_threshold"}.
    """
    labels_only, targets, removed = _setup(bank, targets, seed)
    a = labels_only.num_queries
    counts = labels_only.correct.sum(axis=2)  # [M, N]
    onehot = counts[:, :, None] == np.arange(a + 1)  # [M, N, A+1]
    hist_in, _, hist_out, _ = _shadows.group_sums(onehot, labels_only.keep, removed)
    hist_in, hist_out = hist_in.sum(axis=1), hist_out.sum(axis=1)  # [T, A+1]
    if np.any(hist_in.sum(1) == 0) or np.any(hist_out.sum(1) == 0):
        raise AttackUndefined(
            "label_only_augmentation_count: a target's shadows have no IN or no OUT pair; "
            "train more shadow models."
        )
    # Member iff count >= k: TPR(k) = P(count >= k | IN), k = 0..A.
    tpr = hist_in[:, ::-1].cumsum(1)[:, ::-1] / hist_in.sum(1, keepdims=True)
    fpr = hist_out[:, ::-1].cumsum(1)[:, ::-1] / hist_out.sum(1, keepdims=True)
    threshold = np.argmax(tpr - fpr, axis=1).astype(np.float64)[:, None]
    return AttackOutput(
        scores=counts[targets].astype(np.float64),
        threshold=threshold,
        extras={"mean_threshold": float(threshold.mean())},
    )


def augmentation_lira_attack(
    bank, targets: np.ndarray, *, seed: int = 0, prior: tuple[float, float] = (1.0, 1.0)
) -> AttackOutput:
    """Label-only LiRA: summed per-query log-likelihood ratios of the correctness vector.

    Shadow sets: per example, the IN and OUT shadows of equal, membership-independent size
    (all models but the target and one equalising model).

    Args:
      bank: a `LabelBank` or a `SignalBank` with predicted labels.
      targets: [T] target model indices.
      seed: chooses the equalising models.
      prior: (α, β) of the Beta prior on P(correct) in each group (α = β = 1: Laplace).

    Returns:
      `AttackOutput` with scores [T, N] the log-likelihood ratio, threshold 0.
    """
    alpha, beta = (float(p) for p in prior)
    if not (alpha > 0 and beta > 0):
        raise ValueError(f"prior={prior} must be two positive numbers (α, β) of a Beta prior.")
    labels_only, targets, removed = _setup(bank, targets, seed)
    correct = labels_only.correct
    k_in, n_in, k_out, n_out = _shadows.group_sums(correct, labels_only.keep, removed)
    p_in = (k_in + alpha) / (n_in[..., None] + alpha + beta)
    p_out = (k_out + alpha) / (n_out[..., None] + alpha + beta)
    c = correct[targets]
    llr = np.where(c, np.log(p_in) - np.log(p_out), np.log1p(-p_in) - np.log1p(-p_out))
    return AttackOutput(scores=llr.sum(axis=2), threshold=0.0)


def _patterns(correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct correctness vectors: (ids [M, N] int64, patterns [P, A] bool)."""
    m, n, a = correct.shape
    packed = np.packbits(correct, axis=2)  # [M, N, ceil(A/8)]
    width = packed.shape[2]
    keys = np.ascontiguousarray(packed.reshape(m * n, width)).view(np.dtype((np.void, width)))
    uniq, ids = np.unique(keys.ravel(), return_inverse=True)
    rows = np.frombuffer(uniq.tobytes(), np.uint8).reshape(len(uniq), width)
    return ids.reshape(m, n).astype(np.int64), np.unpackbits(rows, axis=1, count=a).astype(bool)


def _pattern_counts(ids, keep, targets, removed, num_patterns):
    """IN and OUT counts [T, P] of each pattern among each target's shadow pairs."""
    total_in = np.bincount(ids[keep], minlength=num_patterns)
    total_out = np.bincount(ids[~keep], minlength=num_patterns)
    cols = np.arange(keep.shape[1])
    counts_in = np.empty((len(targets), num_patterns), np.int64)
    counts_out = np.empty_like(counts_in)
    for i in range(len(targets)):
        c_in, c_out = total_in.copy(), total_out.copy()
        for models, counts in ((removed[0][i], c_in), (removed[1][i], c_out)):
            ok = models >= 0
            counts -= np.bincount(ids[models[ok], cols[ok]], minlength=num_patterns)
        counts_in[i], counts_out[i] = c_in, c_out
    return counts_in, counts_out


@functools.partial(jax.jit, static_argnames=("hidden", "steps"))
def _train_mlps(keys, features, w_in, w_out, *, hidden, steps, learning_rate, l2):
    """One MLP per target on weighted patterns; returns the logits of every pattern [T, P]."""
    num_features = features.shape[1]
    optimizer = optax.adam(learning_rate)

    def init(key):
        k1, k2 = jax.random.split(key)
        return {
            "w1": jax.random.normal(k1, (num_features, hidden)) * jnp.sqrt(2.0 / num_features),
            "b1": jnp.zeros(hidden),
            "w2": jax.random.normal(k2, (hidden,)) / jnp.sqrt(hidden),
            "b2": jnp.zeros(()),
        }

    def logits(p):
        return jax.nn.relu(features @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def loss(p, wi, wo):
        z = logits(p)
        data = jnp.sum(wi * jax.nn.softplus(-z) + wo * jax.nn.softplus(z))
        return data + l2 * (jnp.sum(p["w1"] ** 2) + jnp.sum(p["w2"] ** 2))

    def fit(key, wi, wo):
        params = init(key)

        def step(carry, _):
            p, s = carry
            g = jax.grad(loss)(p, wi, wo)
            updates, s = optimizer.update(g, s, p)
            return (optax.apply_updates(p, updates), s), None

        (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), None, steps)
        return logits(params)

    return jax.vmap(fit)(keys, w_in, w_out)


def augmentation_model_attack(
    bank,
    targets: np.ndarray,
    *,
    seed: int = 0,
    hidden: int = 32,
    steps: int = 300,
    learning_rate: float = 0.02,
    l2: float = 1e-4,
) -> AttackOutput:
    """Choquette-Choo et al.'s attack model: an MLP on the correctness vector, per target.

    Shadow sets: the (shadow, example) pairs of all models but the target and one
    equalising model per example, with their IN/OUT truth, pooled over examples.

    Args:
      bank: a `LabelBank` or a `SignalBank` with predicted labels.
      targets: [T] target model indices.
      seed: chooses the equalising models and the MLPs' initialisation.
      hidden: hidden units of the MLP.
      steps: full-batch Adam steps.
      learning_rate: Adam's learning rate.
      l2: weight penalty on the MLP's weights.

    Returns:
      `AttackOutput` with scores [T, N] the MLP's logit of P(IN) (classes weighted
      equally), threshold 0, extras {"num_patterns"}.

    Raises:
      ValueError: on non-positive hidden, steps or learning_rate, or a negative l2.
      AttackUndefined: a target's shadow pairs lack IN or OUT examples.
    """
    if hidden < 1 or steps < 1 or not learning_rate > 0 or l2 < 0:
        raise ValueError(
            f"hidden={hidden}, steps={steps} must be >= 1, learning_rate={learning_rate} > 0 "
            f"and l2={l2} >= 0."
        )
    labels_only, targets, removed = _setup(bank, targets, seed)
    ids, patterns = labels_only.cached(("patterns",), lambda: _patterns(labels_only.correct))
    counts_in, counts_out = _pattern_counts(ids, labels_only.keep, targets, removed, len(patterns))
    total_in, total_out = counts_in.sum(1, keepdims=True), counts_out.sum(1, keepdims=True)
    if np.any(total_in == 0) or np.any(total_out == 0):
        raise AttackUndefined(
            "label_only_augmentation_model: a target's shadows have no IN or no OUT pair; "
            "train more shadow models."
        )
    # Fixed shapes (patterns padded to a power of two with weight 0, targets in chunks of
    # _TARGET_CHUNK) so that one compilation serves many stores and target counts.
    num = len(patterns)
    width = max(8, 1 << (num - 1).bit_length())
    features = np.zeros((width, patterns.shape[1]), np.float32)
    features[:num] = 2.0 * patterns - 1.0
    w_in = np.zeros((len(targets), width), np.float32)
    w_out = np.zeros_like(w_in)
    w_in[:, :num], w_out[:, :num] = counts_in / total_in, counts_out / total_out
    pattern_logits = np.empty((len(targets), num))
    for t0 in range(0, len(targets), _TARGET_CHUNK):
        rows = np.arange(t0, t0 + _TARGET_CHUNK).clip(max=len(targets) - 1)
        keys = jax.vmap(lambda t: jax.random.fold_in(jax.random.PRNGKey(seed), t))(
            jnp.asarray(targets[rows])
        )
        out = _train_mlps(
            keys,
            jnp.asarray(features),
            jnp.asarray(w_in[rows]),
            jnp.asarray(w_out[rows]),
            hidden=int(hidden),
            steps=int(steps),
            learning_rate=float(learning_rate),
            l2=float(l2),
        )
        stop = min(len(targets), t0 + _TARGET_CHUNK)
        pattern_logits[t0:stop] = np.asarray(out, np.float64)[: stop - t0, :num]
    scores = np.take_along_axis(pattern_logits, ids[targets], axis=1)
    return AttackOutput(scores=scores, threshold=0.0, extras={"num_patterns": len(patterns)})
