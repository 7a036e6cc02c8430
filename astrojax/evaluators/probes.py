"""Linear probes: how much of a label frozen features carry, fitted on train data, scored held out.

``linear_probe``: classes, by L2 multinomial logistic regression fitted to convergence with
optax's L-BFGS; it reports accuracy, balanced accuracy (the mean recall over classes, which a
majority-class guess cannot inflate) and the majority baseline. ``ridge_probe``: a scalar, by
ridge regression with the penalty chosen by exact leave-one-out error, scored by R^2. Features
are standardised with the training set's statistics; the metrics are
:mod:`astrojax.evaluators.metrics`'.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from astrojax.evaluators.metrics import accuracy_score, r2_score


@functools.partial(jax.jit, static_argnames=("num_classes", "iterations"))
def _fit(x, y, num_classes: int, l2: float, iterations: int):
    params = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros(num_classes)}

    def objective(p):
        logits = x @ p["w"] + p["b"]
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return nll + 0.5 * l2 * jnp.sum(p["w"] ** 2)

    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def body(_, carry):
        p, state = carry
        value, grad = value_and_grad(p, state=state)
        updates, state = solver.update(grad, state, p, value=value, grad=grad,
                                       value_fn=objective)
        return optax.apply_updates(p, updates), state

    params, _ = jax.lax.fori_loop(0, iterations, body, (params, solver.init(params)))
    return params


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, num_classes: int, *, l2: float = 1e-3,
                 iterations: int = 200) -> dict[str, float]:
    """Fits on ``(x_train, y_train)`` and scores on ``(x_test, y_test)``; labels are class ids.
    ``logits`` ``[len(x_test), num_classes]`` come with the scores (for ranking metrics)."""
    x_train, x_test = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
    y_train, y_test = np.asarray(y_train, np.int64), np.asarray(y_test, np.int64)
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError("linear_probe needs at least one training and one test example")
    mean, std = x_train.mean(0), x_train.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    params = _fit(jnp.asarray((x_train - mean) / std, jnp.float32), jnp.asarray(y_train),
                  num_classes, l2, iterations)
    logits = ((x_test - mean) / std) @ np.asarray(params["w"]) + np.asarray(params["b"])
    majority = np.bincount(y_train, minlength=num_classes).argmax()
    return {**accuracy_score(y_test, logits.argmax(-1), num_classes),
            "majority_accuracy": accuracy_score(y_test, np.full_like(y_test, majority))[
                "accuracy"], "logits": logits}


RIDGE_PENALTIES = tuple(10.0 ** np.arange(-4.0, 3.5, 0.5))


def ridge_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                y_test: np.ndarray, *, penalties: tuple[float, ...] = RIDGE_PENALTIES
                ) -> dict[str, float | np.ndarray]:
    """Ridge regression of a scalar label, fitted on ``(x_train, y_train)`` and scored on the
    finite labels of ``(x_test, y_test)``: ``{"r2", "penalty", "prediction" [len(x_test)]}``.

    Features are standardised with the training set's statistics; the penalty (per training
    sample, on the standardised scale) is the one of ``penalties`` with the smallest exact
    leave-one-out error on the training set (closed form from one SVD), so nothing is tuned
    on the held-out data. Numpy, float64.
    """
    x_train, x_test = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
    y_train, y_test = np.asarray(y_train, np.float64), np.asarray(y_test, np.float64)
    if len(x_train) < 2 or len(x_test) == 0:
        raise ValueError("ridge_probe needs at least two training and one test example")
    mean, std = x_train.mean(0), x_train.std(0)
    std = np.where(std > 1e-12, std, 1.0)
    z_train, z_test = (x_train - mean) / std, (x_test - mean) / std
    y_mean = y_train.mean()
    u, s, vt = np.linalg.svd(z_train, full_matrices=False)
    uty = u.T @ (y_train - y_mean)
    n = len(x_train)
    best = None
    for penalty in penalties:
        shrink = s**2 / (s**2 + penalty * n)
        fitted = u @ (shrink * uty)
        hat = (u**2) @ shrink + 1.0 / n  # the intercept's share of the hat matrix
        loo = np.mean(((y_train - y_mean - fitted) / (1.0 - hat)) ** 2)
        if best is None or loo < best[0]:
            best = (loo, penalty)
    penalty = best[1]
    coef = vt.T @ (s / (s**2 + penalty * n) * uty)
    prediction = z_test @ coef + y_mean
    return {"r2": r2_score(y_test, prediction), "penalty": float(penalty),
            "prediction": prediction}
