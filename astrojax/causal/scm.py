"""A structural causal model with learned mechanisms: ``do()``, ancestral sampling from the
intervened model, and counterfactuals for given planets by abduction, action and prediction.

The exogenous noise of a continuous variable is its standardised residual ``eps`` (recovered
exactly from a planet's values: ``eps = (x - mu(pa)) / sigma(pa)``); that of a discrete
variable is a Gumbel vector whose argmax with the logits is the class (Gumbel-max SCM, Oberst
& Sontag 2019): it is not identified by one planet, so abduction samples it from its posterior
given the observed class and counterfactual classes come as probabilities over those samples.

Interventions use the generator's own :class:`~astrojax.data.generator.causal_graph.Intervention`
in raw units; on the model's scale a ``scale`` of a log10 variable is a shift, and ``set``
values are mapped to the scale.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from astrojax.causal.graph import CausalGraph
from astrojax.causal.mechanisms import (
    Layout,
    Mechanisms,
    SCMConfig,
    fit_mechanisms,
    heldout_nll,
    node_order,
    split_outputs,
)
from astrojax.data.generator.causal_graph import (
    VARIABLE_BY_NAME,
    Intervention,
    Variable,
    as_interventions,
    to_model_scale,
)

_NATURAL, _SET, _AFFINE = 0, 1, 2
CHUNK = 2048  # rows per compiled call (static shapes)


@dataclasses.dataclass(frozen=True)
class Action:
    """Interventions as arrays on the model scale: per variable a kind (natural, set, affine),
    the set values ``[b, n]`` and the affine map ``a * x + c``."""

    kind_n: np.ndarray
    value_bn: np.ndarray
    a_n: np.ndarray
    c_n: np.ndarray


class StructuralCausalModel:
    """A causal graph with fitted mechanisms (see :mod:`astrojax.causal.mechanisms`); tables
    are ``[planets, variables]`` on the variables' model scale, columns in ``graph.nodes``
    order."""

    def __init__(self, graph: CausalGraph, layout: Layout, model: Mechanisms):
        self.graph, self.layout, self.model = graph, layout, model
        self._graphdef, self._state = nnx.split(model)
        self._order = jnp.asarray(node_order(graph), jnp.int32)
        self.losses: list[float] = []

    @classmethod
    def fit(cls, graph: CausalGraph, train_bn: np.ndarray, config: SCMConfig | None = None,
            log_every: int = 0) -> StructuralCausalModel:
        layout, model, losses = fit_mechanisms(graph, train_bn, config or SCMConfig(), log_every)
        scm = cls(graph, layout, model)
        scm.losses = losses
        return scm

    # ------------------------------------------------------------------------ interventions
    def action(self, do: Mapping | None, num: int) -> Action:
        """``do`` ({variable: Intervention or value}) as model-scale arrays for ``num`` rows."""
        n = len(self.graph)
        kind, value = np.zeros(n, np.int32), np.zeros((num, n), np.float32)
        a, c = np.ones(n, np.float32), np.zeros(n, np.float32)
        variables = {n: VARIABLE_BY_NAME.get(n, Variable(n, (), scale="linear"))
                     for n in self.graph.nodes}
        for name, spec in as_interventions(do, variables).items():
            j = self.graph.index(name)
            var = variables[name]
            log = var.kind == "continuous" and var.scale == "log10"
            if spec.op == "set":
                kind[j] = _SET
                value[:, j] = np.broadcast_to(to_model_scale(name, spec.value) if log
                                              else spec.value, (num,))
            elif spec.op == "scale":
                kind[j] = _AFFINE
                a[j], c[j] = (1.0, np.log10(spec.value)) if log else (spec.value, 0.0)
            elif log:
                raise ValueError(f"{name} is modelled in log10: scale it rather than shift it")
            else:
                kind[j], c[j] = _AFFINE, spec.value
        return Action(kind, value, a, c)

    # ------------------------------------------------------------------------ sampling
    def sample(self, num: int, do: Mapping | None = None, seed: int = 0) -> np.ndarray:
        """``[num, n]`` planets drawn from the (intervened) model: ancestral sampling with
        fresh noise. The same ``seed`` gives the same noise with and without ``do``, so the
        difference of two calls is a low-variance effect estimate."""
        eps, gumbel = self._fresh_noise(num, seed)
        return self._propagate(eps, gumbel, self.action(do, num))

    def _fresh_noise(self, num: int, seed: int):
        key_eps, key_gumbel = jax.random.split(jax.random.key(seed))
        n, k = len(self.graph), self.layout.max_classes
        return (jax.random.normal(key_eps, (num, n)),
                jax.random.gumbel(key_gumbel, (num, n, k)))

    def _propagate(self, eps_bn, gumbel_bnk, action: Action) -> np.ndarray:
        def run(eps, gumbel, value):
            return _propagate(self._graphdef, self._state, self.layout, self._order, eps, gumbel,
                              jnp.asarray(action.kind_n), value, jnp.asarray(action.a_n),
                              jnp.asarray(action.c_n))

        return _in_chunks(run, eps_bn, gumbel_bnk, action.value_bn)

    # ------------------------------------------------------------------------ counterfactuals
    def abduct(self, table_bn: np.ndarray, num_samples: int = 32, seed: int = 0):
        """The noise of each planet given its values: ``eps`` ``[b, n]`` (exact for
        continuous variables) and ``num_samples`` posterior Gumbel draws ``[S, b, n, K]``
        consistent with its observed classes."""
        table_bn = np.asarray(table_bn, np.float32)
        keys = jax.random.split(jax.random.key(seed), -(-len(table_bn) // CHUNK))
        eps, gumbel = [], []
        for i, key in enumerate(keys):
            rows = table_bn[i * CHUNK:(i + 1) * CHUNK]
            padded = np.concatenate([rows, np.zeros((CHUNK - len(rows), rows.shape[1]),
                                                    np.float32)])
            e, g = _abduct(self._graphdef, self._state, self.layout, jnp.asarray(padded), key,
                           num_samples)
            eps.append(np.asarray(e)[:len(rows)])
            gumbel.append(np.asarray(g)[:, :len(rows)])
        return np.concatenate(eps), np.concatenate(gumbel, axis=1)

    def counterfactual(self, table_bn: np.ndarray, do: Mapping | None,
                       num_samples: int = 32, seed: int = 0) -> np.ndarray:
        """``[S, b, n]``: what each planet of ``table_bn`` would have been under ``do``,
        one table per posterior noise sample (continuous variables agree across samples
        unless a discrete ancestor differs)."""
        table_bn = np.asarray(table_bn, np.float32)
        eps_bn, gumbel_sbnk = self.abduct(table_bn, num_samples, seed)
        s, b = gumbel_sbnk.shape[:2]
        eps = np.broadcast_to(eps_bn, (s, *eps_bn.shape)).reshape(s * b, -1)
        out = self._propagate(eps, gumbel_sbnk.reshape(s * b, *gumbel_sbnk.shape[2:]),
                              self.action(do, s * b) if not _per_planet(do) else
                              self.action(_tile(do, s), s * b))
        return out.reshape(s, b, -1)

    def heldout_nll(self, table_bn: np.ndarray) -> dict[str, float]:
        """Mean negative log-likelihood of each variable given its parents on ``table_bn``
        (continuous: nats in standardised units; discrete: nats)."""
        return dict(zip(self.graph.nodes, heldout_nll(self.layout, self.model, table_bn).tolist(),
                        strict=True))


def _in_chunks(fn, *arrays) -> np.ndarray:
    """``fn`` over rows in chunks of ``CHUNK`` (the last one padded), so that each model
    compiles once whatever the number of planets."""
    num = len(arrays[0])
    out = []
    for start in range(0, num, CHUNK):
        parts = [np.asarray(a[start:start + CHUNK]) for a in arrays]
        pad = CHUNK - len(parts[0])
        parts = [np.concatenate([p, np.zeros((pad, *p.shape[1:]), p.dtype)]) for p in parts]
        out.append(np.asarray(fn(*map(jnp.asarray, parts)))[:CHUNK - pad])
    return np.concatenate(out)


def _per_planet(do: Mapping | None) -> bool:
    return any(isinstance(v, Intervention) and np.ndim(v.value) > 0 or
               not isinstance(v, Intervention) and np.ndim(v) > 0 for v in (do or {}).values())


def _tile(do: Mapping, s: int) -> dict:
    out = {}
    for name, v in do.items():
        spec = v if isinstance(v, Intervention) else Intervention("set", v)
        value = np.tile(np.asarray(spec.value), s) if np.ndim(spec.value) else spec.value
        out[name] = Intervention(spec.op, value)
    return out


@functools.partial(jax.jit, static_argnums=(0, 2))
def _propagate(graphdef, state, layout: Layout, order, eps_bn, gumbel_bnk, kind_n, value_bn,
               a_n, c_n):
    """Every variable in topological order from its parents and its noise, with the action
    applied where it is computed (so descendants see the intervened value)."""
    model = nnx.merge(graphdef, state)
    mean, std = jnp.asarray(layout.mean), jnp.asarray(layout.std)
    discrete = jnp.asarray(np.array(layout.num_classes) > 0)
    class_mask = jnp.asarray(layout.class_mask())

    def body(v_bn, j):
        out = model.node(layout.features(v_bn), j)
        continuous = mean[j] + std[j] * (out[:, 0] + model.sigma(out, j) * eps_bn[:, j])
        logits = jnp.where(class_mask[j], out[:, 2:], -1e9)
        natural = jnp.where(discrete[j], jnp.argmax(logits + gumbel_bnk[:, j], -1), continuous)
        value = jnp.where(kind_n[j] == _SET, value_bn[:, j],
                          jnp.where(kind_n[j] == _AFFINE, a_n[j] * natural + c_n[j], natural))
        return v_bn.at[:, j].set(value), None

    v_bn, _ = jax.lax.scan(body, jnp.zeros(eps_bn.shape, jnp.float32), order)
    return v_bn


@functools.partial(jax.jit, static_argnums=(0, 2, 5))
def _abduct(graphdef, state, layout: Layout, v_bn, key, num_samples: int):
    model = nnx.merge(graphdef, state)
    mu, sigma, logits_bnk = split_outputs(layout, model, model(layout.features(v_bn)))
    eps_bn = ((v_bn - layout.mean) / layout.std - mu) / sigma
    eps_bn = jnp.where(jnp.asarray(np.array(layout.num_classes) > 0), 0.0, eps_bn)
    # Top-down Gumbel: the observed class carries the maximum, Gumbel(logsumexp(logits));
    # every other class a Gumbel(its logit) truncated below that maximum.
    k = layout.max_classes
    observed = jax.nn.one_hot(jnp.clip(v_bn, 0, k - 1).astype(jnp.int32), k, dtype=bool)
    key_top, key_rest = jax.random.split(key)
    shape = (num_samples, *logits_bnk.shape)
    top = (jax.nn.logsumexp(logits_bnk, -1, keepdims=True)
           + jax.random.gumbel(key_top, (*shape[:-1], 1)))
    free = logits_bnk + jax.random.gumbel(key_rest, shape)
    truncated = -jnp.logaddexp(-top, -free)
    gumbel = jnp.where(observed, top, truncated) - logits_bnk
    return eps_bn, gumbel
