"""Neural mechanisms: one conditional model per variable given its parents, all variables'
networks stacked into one module (a leading node axis) and fitted together in one jitted step.

A continuous variable ``x`` (on its declared scale, standardised) is Gaussian given its
parents: ``x = mu(pa) + sigma * eps`` with one ``sigma`` per variable (``noise="additive"``) or
``sigma(pa)`` (``"heteroscedastic"``); ``eps ~ N(0, 1)`` is exactly recoverable from a planet's
values, which counterfactuals need. A binary or categorical variable is categorical given its
parents (``logits(pa)``), sampled by Gumbel-max so that its noise can be inferred too.

Each network sees every variable's features multiplied by its parent mask, so a variable's
prediction depends on its parents only (tested), and the stacked einsum keeps shapes static.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from astrojax.causal.graph import CausalGraph
from astrojax.data.generator.causal_graph import VARIABLE_BY_NAME

NOISES = ("additive", "heteroscedastic")
MIN_SIGMA = 1e-3  # standardised units: deterministic variables still get a proper density


@dataclasses.dataclass(frozen=True)
class SCMConfig:
    """The mechanisms' size and fitting schedule. On 6,500 training planets the defaults fit
    in about a minute on a shared 2-core CPU."""

    noise: str = "heteroscedastic"
    hidden: int = 64
    steps: int = 3000
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.noise not in NOISES:
            raise ValueError(f"SCMConfig.noise must be one of {', '.join(NOISES)}, got "
                             f"{self.noise!r}")
        for name in ("hidden", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"SCMConfig.{name} must be >= 1, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: a static jit argument
class Layout:
    """How a ``[b, n]`` table of variable values becomes network features: continuous
    variables standardised (``mean``, ``std`` from the training planets), binary ones as
    -1/+1, categorical ones one-hot. ``mask[j, d]`` is 1 if feature ``d`` belongs to a parent
    of variable ``j``."""

    nodes: tuple[str, ...]
    num_classes: tuple[int, ...]  # 0 for continuous
    mean: np.ndarray  # [n] float32 (0, 1 for discrete variables)
    std: np.ndarray
    mask: np.ndarray  # [n, D] float32

    @classmethod
    def build(cls, graph: CausalGraph, table_bn: np.ndarray) -> Layout:
        classes = tuple(VARIABLE_BY_NAME[n].num_classes if n in VARIABLE_BY_NAME else 0
                        for n in graph.nodes)
        continuous = np.array([k == 0 for k in classes])
        mean = np.where(continuous, table_bn.mean(0), 0.0).astype(np.float32)
        std = np.where(continuous, np.maximum(table_bn.std(0), 1e-6), 1.0).astype(np.float32)
        owner = np.concatenate([[j] * (k if k > 2 else 1) for j, k in enumerate(classes)])
        adjacency = graph.adjacency()
        mask = adjacency[owner].T.astype(np.float32)  # [n, D]: feature d's node -> node j
        return cls(graph.nodes, classes, mean, std, mask)

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    @property
    def max_classes(self) -> int:
        return max(max(self.num_classes), 2)

    def features(self, v_bn: jax.Array) -> jax.Array:
        """``[b, D]`` network features of a ``[b, n]`` table."""
        columns = []
        for j, k in enumerate(self.num_classes):
            x = v_bn[:, j]
            if k == 0:
                columns.append(((x - self.mean[j]) / self.std[j])[:, None])
            elif k == 2:
                columns.append((2.0 * x - 1.0)[:, None])
            else:
                columns.append(jax.nn.one_hot(x.astype(jnp.int32), k))
        return jnp.concatenate(columns, axis=1)

    def class_mask(self) -> np.ndarray:
        """``[n, K]`` True where class k exists for variable j (continuous rows all False)."""
        k = np.arange(self.max_classes)
        return np.array([(k < c) if c else np.zeros_like(k, bool) for c in self.num_classes])


class Mechanisms(nnx.Module):
    """``n`` two-hidden-layer MLPs, one per variable, as stacked weights: output ``[b, n, 2 +
    K]`` = (mean, raw log-scale, K logits) per variable."""

    def __init__(self, layout: Layout, hidden: int, noise: str, *, rngs: nnx.Rngs):
        n, d, k = layout.num_nodes, layout.mask.shape[1], layout.max_classes
        init = nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal",
                                                 in_axis=-2, out_axis=-1, batch_axis=(0,))
        self.w1_ndh = nnx.Param(init(rngs.params(), (n, d, hidden)))
        self.b1_nh = nnx.Param(jnp.zeros((n, hidden)))
        self.w2_nhh = nnx.Param(init(rngs.params(), (n, hidden, hidden)))
        self.b2_nh = nnx.Param(jnp.zeros((n, hidden)))
        self.w3_nho = nnx.Param(init(rngs.params(), (n, hidden, 2 + k)) * 0.1)
        self.b3_no = nnx.Param(jnp.zeros((n, 2 + k)))
        self.log_sigma_n = nnx.Param(jnp.zeros((n,)))
        self.mask_nd = nnx.Variable(jnp.asarray(layout.mask))
        self.heteroscedastic = noise == "heteroscedastic"

    def __call__(self, x_bd: jax.Array) -> jax.Array:
        # The parent mask goes on the weights, so the first layer is one [b, D] x [D, n h]
        # matmul; the node axis leads inside (XLA:CPU batches matmuls over a leading axis
        # about 3x faster than over a middle one).
        w1_ndh = self.w1_ndh[...] * self.mask_nd[...][:, :, None]
        n, d, h = w1_ndh.shape
        h_nbh = (x_bd @ w1_ndh.transpose(1, 0, 2).reshape(d, n * h)).reshape(-1, n, h)
        h_nbh = jax.nn.gelu(h_nbh.transpose(1, 0, 2) + self.b1_nh[...][:, None])
        h_nbh = jax.nn.gelu(h_nbh @ self.w2_nhh[...] + self.b2_nh[...][:, None])
        out_nbo = h_nbh @ self.w3_nho[...] + self.b3_no[...][:, None]
        return out_nbo.transpose(1, 0, 2)

    def node(self, x_bd: jax.Array, j: jax.Array) -> jax.Array:
        """Variable ``j``'s output ``[b, 2 + K]`` alone (``j`` may be traced)."""
        h_bh = jax.nn.gelu(x_bd * self.mask_nd[...][j] @ self.w1_ndh[...][j] + self.b1_nh[...][j])
        h_bh = jax.nn.gelu(h_bh @ self.w2_nhh[...][j] + self.b2_nh[...][j])
        return h_bh @ self.w3_nho[...][j] + self.b3_no[...][j]

    def sigma(self, out: jax.Array, j=None) -> jax.Array:
        """Standardised noise scale from outputs ``[..., 2 + K]`` (of variable ``j``, or of every
        variable along the second-to-last axis)."""
        raw = out[..., 1] if self.heteroscedastic else (
            self.log_sigma_n[...] if j is None else self.log_sigma_n[...][j])
        return MIN_SIGMA + jax.nn.softplus(raw + 0.5413)  # softplus(0.5413) = 1: start at 1


def split_outputs(layout: Layout, model: Mechanisms, out_bno: jax.Array):
    """``(mu, sigma, logits)``: ``[b, n]`` standardised mean and scale; ``[b, n, K]`` logits
    with absent classes at -1e9."""
    logits = jnp.where(jnp.asarray(layout.class_mask()), out_bno[..., 2:], -1e9)
    return out_bno[..., 0], model.sigma(out_bno), logits


def nll_per_node(layout: Layout, model: Mechanisms, v_bn: jax.Array) -> jax.Array:
    """``[b, n]`` negative log-likelihood of each variable given its parents (standardised
    units for continuous variables, nats)."""
    mu, sigma, logits = split_outputs(layout, model, model(layout.features(v_bn)))
    z = (v_bn - layout.mean) / layout.std
    gaussian = 0.5 * ((z - mu) / sigma) ** 2 + jnp.log(sigma) + 0.5 * jnp.log(2 * jnp.pi)
    labels = jnp.clip(v_bn, 0, layout.max_classes - 1).astype(jnp.int32)
    categorical = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    discrete = jnp.asarray(np.array(layout.num_classes) > 0)
    return jnp.where(discrete, categorical, gaussian)


def fit_mechanisms(graph: CausalGraph, train_bn: np.ndarray, config: SCMConfig | None = None,
                   log_every: int = 0) -> tuple[Layout, Mechanisms, list[float]]:
    """Mechanisms for ``graph`` fitted by maximum likelihood on ``train_bn`` ([planets,
    variables] on the model scale, columns in ``graph.nodes`` order). Returns the layout, the
    fitted module and the loss every ``log_every`` steps."""
    config = config or SCMConfig()
    train_bn = np.asarray(train_bn, np.float32)
    if train_bn.ndim != 2 or train_bn.shape[1] != len(graph):
        raise ValueError(f"training table of shape {train_bn.shape} for {len(graph)} variables")
    if not np.isfinite(train_bn).all():
        raise ValueError("training table has non-finite values")
    layout = Layout.build(graph, train_bn)
    model = Mechanisms(layout, config.hidden, config.noise, rngs=nnx.Rngs(config.seed))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, 100,
                                                  max(config.steps, 101), 0.0)
    tx = optax.chain(optax.clip_by_global_norm(1.0),
                     optax.adamw(schedule, weight_decay=config.weight_decay))
    step = _train_step(layout, graphdef, rest, tx)
    opt_state = tx.init(params)
    data = jnp.asarray(train_bn)
    batches = np.random.default_rng(config.seed).integers(
        0, len(train_bn), (config.steps, min(config.batch_size, len(train_bn))))
    losses = []
    for i in range(config.steps):
        params, opt_state, loss = step(params, opt_state, data, jnp.asarray(batches[i]))
        if log_every and (i % log_every == 0 or i == config.steps - 1):
            losses.append(float(loss))
    return layout, nnx.merge(graphdef, params, rest), losses


def _train_step(layout: Layout, graphdef, rest, tx):
    """The jitted update: a pure function of (params, optimizer state, data, batch rows)."""

    def loss_fn(params, v_bn):
        model = nnx.merge(graphdef, params, rest)
        return nll_per_node(layout, model, v_bn).mean(0).sum()

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, data_bn, rows_b):
        loss, grads = jax.value_and_grad(loss_fn)(params, data_bn[rows_b])
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def heldout_nll(layout: Layout, model: Mechanisms, table_bn: np.ndarray) -> np.ndarray:
    """``[n]`` mean negative log-likelihood per variable on ``table_bn``."""
    return np.asarray(jax.jit(lambda v: nll_per_node(layout, model, v).mean(0))(
        jnp.asarray(table_bn, jnp.float32)))


def node_order(graph: CausalGraph) -> Sequence[int]:
    return [graph.index(n) for n in graph.topological_order()]
