"""Learning a causal graph from a [samples, variables] table: NOTEARS in JAX, PC as baseline.

**NOTEARS** (Zheng et al. 2018, "DAGs with NO TEARS") turns the search over DAGs into one
smooth problem: minimise a least-squares score plus an L1 penalty subject to
``h(W) = tr(exp(W * W)) - d = 0``, which holds exactly when the weighted graph ``W`` has no
cycle. The constraint is enforced by the augmented Lagrangian: for a penalty ``rho`` and a
multiplier ``alpha``, minimise ``score + alpha * h + rho / 2 * h**2``, then raise ``rho`` until
``h`` falls by 4x and move ``alpha``, as in the authors' reference code. Here:

- The inner problem is solved by L-BFGS (``optax.lbfgs`` with its zoom line search) inside one
  jitted ``lax.while_loop``; ``rho`` and ``alpha`` are arguments, so it compiles once per shape.
  The L1 term is made smooth the way the reference code makes it smooth for L-BFGS-B: split
  ``W = P - N`` with ``P, N >= 0``, so ``|W|_1 = sum(P + N)``. Instead of bounds (optax has no
  bounded L-BFGS) ``P = p**2`` and ``N = n**2``, an unconstrained problem with the same minima.
- It runs in float64 (``jax.enable_x64`` around the solve only): ``rho`` reaches 1e16 and the
  tolerance on ``h`` is 1e-8, both out of float32's reach (``tr(exp(.))`` of a 10-node graph
  carries float32 round-off of ~1e-6).
- Inputs are standardised (each column to mean 0, variance 1) by default: on physical units
  the least-squares score would mostly rank the units. The price is known (Reisach et al.
  2021, "Beware of the simulated DAG"): NOTEARS' successes on simulated data come from
  "varsortability", variances that grow along the causal order, and standardising removes
  it. Measured here (``benchmarks/causal_discovery.py``): on linear SEMs with equal noise
  variances NOTEARS finds the graph on the raw scale (SHD 0 on 5 of 6 graphs) and reverses
  much of it once standardised (SHD 2-3 of 5 edges, 13-16 of 20). ``standardise=False``
  is there for data whose scales mean something.
- Weights below ``w_threshold`` in magnitude are dropped. If a cycle survives (the solver
  stopped at ``rho_max`` before ``h`` reached ``h_tol``), the weakest edge of each remaining
  cycle is dropped until none is left; the result lists those edges
  (``dropped_for_acyclicity``), so the output is always a DAG and says when it was forced.

**NOTEARS-MLP** (Zheng et al. 2020, "Learning sparse nonparametric DAGs"): each variable is a
one-hidden-layer sigmoid MLP of all others; the weighted adjacency ``W[i, j]`` is the L2 norm of
the first-layer weights from input ``i`` into variable ``j``'s network, and ``h`` is applied to
``W * W``. The same augmented Lagrangian, L1 on the first layer, L2 on all weights.

**PC** (Spirtes & Glymour 1991) comes from causal-learn (the ``causal`` extra) with Fisher-z
conditional independence tests; it returns a CPDAG (undirected edges where the data cannot
orient). ``discovery_scores`` scores both kinds of graph.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from astrojax.causal.discovery_scores import (
    as_graph,
    cpdag_of,
    edge_errors,
    edge_precision_recall,
    find_cycle,
    structural_hamming_distance,
)

__all__ = ["DiscoveredGraph", "NotearsConfig", "check_table", "discovery_report", "notears",
           "pc"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class NotearsConfig:
    """NOTEARS settings; the defaults are the reference code's for standardised data."""

    model: str = "linear"  # "linear" or "mlp"
    lambda1: float = 0.05  # L1 on W (linear) or on the first layer (mlp)
    lambda2: float = 0.01  # L2 on all MLP weights (mlp only)
    hidden: int = 10  # hidden units per variable (mlp only)
    w_threshold: float = 0.3
    h_tol: float = 1e-8
    rho_max: float = 1e16
    max_outer: int = 100
    max_inner: int = 300  # L-BFGS iterations per augmented-Lagrangian step
    inner_tol: float = 1e-6  # stop an inner solve when the gradient norm falls below this
    standardise: bool = True
    seed: int = 0  # initial MLP weights

    def __post_init__(self):
        if self.model not in ("linear", "mlp"):
            raise ValueError(f"NotearsConfig.model: {self.model!r}, expected 'linear' or 'mlp'")
        for key in ("lambda1", "lambda2", "w_threshold", "h_tol"):
            if getattr(self, key) < 0:
                raise ValueError(f"NotearsConfig.{key}: must be >= 0, got {getattr(self, key)}")
        if self.rho_max <= 1.0:  # the first solve runs at rho = 1
            raise ValueError(f"NotearsConfig.rho_max: must be > 1, got {self.rho_max}")
        if self.max_outer < 1 or self.max_inner < 1 or self.hidden < 1:
            raise ValueError("NotearsConfig: max_outer, max_inner and hidden must be >= 1")


@dataclasses.dataclass(frozen=True)
class DiscoveredGraph:
    """A learned graph. ``adjacency[i, j] = 1`` for ``i -> j``; a CPDAG (PC) has both
    ``[i, j]`` and ``[j, i]`` set for an undirected edge. ``weights`` are NOTEARS' edge
    strengths before thresholding (None for PC)."""

    method: str
    names: tuple[str, ...]
    adjacency: np.ndarray
    weights: np.ndarray | None
    seconds: float  # wall clock, including JAX compilation
    cpu_seconds: float | None = None  # this process's CPU time (meaningful on a shared host)
    h: float | None = None  # acyclicity h(W) at the end of the solve (NOTEARS)
    outer_steps: int | None = None
    dropped_for_acyclicity: tuple[str, ...] = ()

    def edges(self) -> list[str]:
        a, out = self.adjacency, []
        for i, j in zip(*np.nonzero(a), strict=True):
            if a[j, i] and j < i:
                continue
            out.append(f"{self.names[i]} {'--' if a[j, i] else '->'} {self.names[j]}")
        return out


# ---------------------------------------------------------------- the input table
def check_table(data, names: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """``data`` as a float64 [samples, variables] matrix with its variable names, or one clear
    ValueError: not 2-D, fewer than 2 variables or 3 samples, NaN/inf, a constant column."""
    x = np.asarray(data, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"data: expected a [samples, variables] table, got shape {x.shape}")
    n, d = x.shape
    names = tuple(f"x{i}" for i in range(d)) if names is None else tuple(map(str, names))
    if len(names) != d:
        raise ValueError(f"names: {len(names)} names for {d} variables")
    if d < 2:
        raise ValueError(f"data: causal discovery needs at least 2 variables, got {d}")
    if n < 3:
        raise ValueError(f"data: needs at least 3 samples, got {n}")
    bad = ~np.isfinite(x).all(axis=0)
    if bad.any():
        raise ValueError(f"data: NaN or inf in variable(s) "
                         f"{[names[i] for i in np.flatnonzero(bad)]}; drop or impute them first")
    flat = np.ptp(x, axis=0) == 0
    if flat.any():
        raise ValueError(f"data: constant variable(s) {[names[i] for i in np.flatnonzero(flat)]} "
                         "carry no information about causes; drop them")
    return x, names


# ---------------------------------------------------------------- NOTEARS
def _acyclicity(w2_dd: jax.Array) -> jax.Array:
    """h = tr(exp(A)) - d for the nonnegative A = W * W: 0 exactly when A has no cycle."""
    return jnp.trace(jax.scipy.linalg.expm(w2_dd)) - w2_dd.shape[0]


def _linear_weights(params, off_dd):
    p, n = params["p"], params["n"]
    return off_dd * (p * p - n * n)


def _linear_objective(params, x_nd, off_dd, lambda1, lambda2):
    del lambda2
    w_dd = _linear_weights(params, off_dd)
    resid_nd = x_nd - x_nd @ w_dd
    score = 0.5 / x_nd.shape[0] * jnp.sum(resid_nd**2)
    l1 = lambda1 * jnp.sum(off_dd * (params["p"] ** 2 + params["n"] ** 2))
    return score + l1, w_dd * w_dd


def _mlp_sq_weights(params, off_dd):
    """A[i, j] = sum over hidden units of (first-layer weight from input i into net j)**2."""
    w1_jhi = params["p"] ** 2 - params["n"] ** 2
    return jnp.einsum("jhi,jhi->ij", w1_jhi, w1_jhi) * off_dd


def _mlp_objective(params, x_nd, off_dd, lambda1, lambda2):
    w1_jhi = (params["p"] ** 2 - params["n"] ** 2) * off_dd.T[:, None, :]
    act_njh = jax.nn.sigmoid(jnp.einsum("ni,jhi->njh", x_nd, w1_jhi) + params["b1"])
    pred_nj = jnp.einsum("njh,jh->nj", act_njh, params["w2"]) + params["b2"]
    score = 0.5 / x_nd.shape[0] * jnp.sum((x_nd - pred_nj) ** 2)
    l1 = lambda1 * jnp.sum(params["p"] ** 2 + params["n"] ** 2)
    l2 = 0.5 * lambda2 * (jnp.sum(w1_jhi**2) + jnp.sum(params["w2"] ** 2))
    return score + l1 + l2, _mlp_sq_weights(params, off_dd)


@partial(jax.jit, static_argnames=("model", "max_inner"))
def _inner_solve(params, x_nd, rho, alpha, lambda1, lambda2, inner_tol, *, model, max_inner):
    """argmin over params of score + L1 (+ L2) + alpha h + rho/2 h^2, by L-BFGS in one
    while_loop. Returns the parameters and h at the end."""
    d = x_nd.shape[1]
    off_dd = 1.0 - jnp.eye(d, dtype=x_nd.dtype)
    objective = _linear_objective if model == "linear" else _mlp_objective

    def lagrangian(p):
        value, w2_dd = objective(p, x_nd, off_dd, lambda1, lambda2)
        h = _acyclicity(w2_dd)
        return value + alpha * h + 0.5 * rho * h * h

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(lagrangian)

    def step(carry):
        p, state = carry
        value, grad = value_and_grad(p, state=state)
        updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=lagrangian)
        return optax.apply_updates(p, updates), state

    def going(carry):
        _, state = carry
        count = optax.tree.get(state, "count")
        grad_norm = optax.tree.norm(optax.tree.get(state, "grad"))
        return (count == 0) | ((count < max_inner) & (grad_norm >= inner_tol))

    params, _ = jax.lax.while_loop(going, step, (params, opt.init(params)))
    _, w2_dd = objective(params, x_nd, off_dd, lambda1, lambda2)
    return params, _acyclicity(w2_dd)


def _init_params(model: str, d: int, hidden: int, seed: int) -> dict[str, np.ndarray]:
    # p = n: W starts at exactly 0 with nonzero gradients (p = n = 0 would be a saddle).
    if model == "linear":
        return {"p": np.full((d, d), 0.1), "n": np.full((d, d), 0.1)}
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(d)  # the reference code's uniform initialisation scale
    w1 = rng.uniform(-bound, bound, (d, hidden, d))
    return {"p": np.sqrt(np.maximum(w1, 0) + 1e-2), "n": np.sqrt(np.maximum(-w1, 0) + 1e-2),
            "b1": rng.uniform(-bound, bound, (d, hidden)),
            "w2": rng.uniform(-1 / np.sqrt(hidden), 1 / np.sqrt(hidden), (d, hidden)),
            "b2": np.zeros(d)}


def _edge_weights(model: str, params) -> np.ndarray:
    d = params["p"].shape[-1]
    off = 1.0 - np.eye(d)
    if model == "linear":
        return np.asarray(_linear_weights(params, off))
    return np.sqrt(np.asarray(_mlp_sq_weights(params, off)))


def _break_cycles(adjacency: np.ndarray, weights: np.ndarray,
                  names: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Drop the weakest edge of each remaining cycle until the graph is a DAG."""
    a, dropped = adjacency.copy(), []
    while (cycle := find_cycle(a)) is not None:
        pairs = list(zip(cycle, cycle[1:] + cycle[:1], strict=True))
        i, j = min(pairs, key=lambda e: abs(weights[e]))
        a[i, j] = 0
        dropped.append(f"{names[i]} -> {names[j]} (|w| {abs(weights[i, j]):.3g})")
    return a, tuple(dropped)


def notears(data, names: Sequence[str] | None = None,
            config: NotearsConfig = NotearsConfig()) -> DiscoveredGraph:
    """Learn a DAG from a [samples, variables] table by NOTEARS (linear or MLP; module
    docstring). Always returns a DAG; ``dropped_for_acyclicity`` says if one was forced."""
    x, names = check_table(data, names)
    start, cpu_start = time.perf_counter(), time.process_time()
    if config.standardise:
        x = (x - x.mean(axis=0)) / x.std(axis=0)
    else:
        x = x - x.mean(axis=0)
    d = x.shape[1]
    rho, alpha, h, steps = 1.0, 0.0, np.inf, 0
    with jax.enable_x64(True):
        params = jax.tree.map(jnp.asarray, _init_params(config.model, d, config.hidden,
                                                        config.seed))
        x_nd = jnp.asarray(x)
        solve = partial(_inner_solve, x_nd=x_nd, lambda1=config.lambda1,
                        lambda2=config.lambda2, inner_tol=config.inner_tol,
                        model=config.model, max_inner=config.max_inner)
        while steps < config.max_outer:
            steps += 1
            # Raise rho until h falls by 4x (the reference code's rule), then move alpha.
            while rho < config.rho_max:
                new_params, new_h = solve(params, rho=rho, alpha=alpha)
                new_h = float(new_h)
                if new_h > 0.25 * h:
                    rho *= 10.0
                else:
                    break
            params, h = new_params, new_h
            log.info("notears-%s: step %d, rho %.0e, h %.3g", config.model, steps, rho, h)
            alpha += rho * h
            if h <= config.h_tol or rho >= config.rho_max:
                break
        weights = _edge_weights(config.model, jax.device_get(params))
    adjacency = (np.abs(weights) > config.w_threshold).astype(np.int64)
    adjacency, dropped = _break_cycles(adjacency, weights, names)
    if dropped:
        log.warning("notears: dropped %d edge(s) to break cycles left at h=%.3g: %s",
                    len(dropped), h, "; ".join(dropped))
    return DiscoveredGraph(method=f"notears-{config.model}", names=names, adjacency=adjacency,
                           weights=weights, seconds=time.perf_counter() - start,
                           cpu_seconds=time.process_time() - cpu_start, h=h,
                           outer_steps=steps, dropped_for_acyclicity=dropped)


# ---------------------------------------------------------------- PC (causal-learn)
def pc(data, names: Sequence[str] | None = None, alpha: float = 0.01,
       indep_test: str = "fisherz") -> DiscoveredGraph:
    """The PC algorithm from causal-learn: a CPDAG (undirected edges as both directions)."""
    x, names = check_table(data, names)
    try:
        from causallearn.search.ConstraintBased.PC import pc as causallearn_pc
    except ImportError as err:
        raise ImportError("the PC baseline needs causal-learn: pip install -e '.[causal]'") \
            from err
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        cg = causallearn_pc(x, alpha=alpha, indep_test=indep_test, show_progress=False,
                            node_names=list(names))
    except ValueError as err:
        if "singular" not in str(err):
            raise
        raise ValueError("pc: the correlation matrix of some variables is singular (exact "
                         "deterministic relations, e.g. a variable computed from others); "
                         "Fisher-z cannot test them: drop the redundant variables or add "
                         "measurement noise") from None
    g = np.asarray(cg.G.graph)
    # causal-learn: i -> j is g[i, j] = -1 (tail at i), g[j, i] = 1 (arrowhead at j);
    # i -- j is -1 both ways; i <-> j (conflicting orientations) is 1 both ways, kept here as
    # undirected: PC could not decide its direction.
    directed = (g == -1) & (g.T == 1)
    undecided = ((g == -1) & (g.T == -1)) | ((g == 1) & (g.T == 1))
    adjacency = (directed | undecided).astype(np.int64)
    return DiscoveredGraph(method="pc", names=names, adjacency=adjacency, weights=None,
                           seconds=time.perf_counter() - start,
                           cpu_seconds=time.process_time() - cpu_start)


# ---------------------------------------------------------------- the report
def _scores(graph: DiscoveredGraph, true: np.ndarray, true_cpdag: np.ndarray) -> dict:
    learned_cpdag = graph.adjacency if graph.method == "pc" else cpdag_of(graph.adjacency)
    out = {
        "seconds": round(graph.seconds, 3),
        "cpu_seconds": round(graph.cpu_seconds, 3),
        "edges": graph.edges(),
        "shd": structural_hamming_distance(graph.adjacency, true),
        "shd_cpdag": structural_hamming_distance(learned_cpdag, true_cpdag),
        **{k: (None if np.isnan(v) else round(v, 4))
           for k, v in edge_precision_recall(graph.adjacency, true).items()},
        "errors": edge_errors(graph.adjacency, true, graph.names),
    }
    if graph.h is not None:
        out.update(h=graph.h, outer_steps=graph.outer_steps,
                   dropped_for_acyclicity=list(graph.dropped_for_acyclicity))
    return out


def discovery_report(data, names: Sequence[str], true_adjacency,
                     configs: Sequence[NotearsConfig] = (NotearsConfig(),),
                     pc_alpha: float | None = 0.01) -> dict:
    """NOTEARS (one entry per config: ``notears-linear``, ``notears-mlp``, ``-raw`` when not
    standardised) and PC, each scored against the true DAG: SHD (and SHD between equivalence
    classes, ``shd_cpdag``), edge precision/recall, the wrong edges by name, seconds. PC is
    left out, with the reason, when causal-learn is not installed, and not run when
    ``pc_alpha`` is None."""
    x, names = check_table(data, names)
    true = as_graph(true_adjacency, "true_adjacency")
    if true.shape[0] != len(names):
        raise ValueError(f"true_adjacency: {true.shape[0]} variables, data has {len(names)}")
    true_cpdag = cpdag_of(true)
    report = {
        "samples": int(x.shape[0]), "variables": list(names),
        "true_edges": DiscoveredGraph("true", names, true, None, 0.0).edges(),
        "true_edges_unorientable": int(np.sum(true_cpdag & true_cpdag.T) // 2),
        "empty_graph_shd": structural_hamming_distance(np.zeros_like(true), true),
        "methods": {},
    }
    for config in configs:
        graph = notears(x, names, config)
        label = graph.method + ("" if config.standardise else "-raw")
        label += "" if label not in report["methods"] else f"#{len(report['methods'])}"
        report["methods"][label] = {"config": dataclasses.asdict(config),
                                    **_scores(graph, true, true_cpdag)}
    if pc_alpha is None:
        return report
    try:
        graph = pc(x, names, alpha=pc_alpha)
    except ImportError as err:
        report["methods"]["pc"] = {"skipped": str(err)}
    else:
        report["methods"]["pc"] = {"alpha": pc_alpha, "indep_test": "fisherz",
                                   **_scores(graph, true, true_cpdag)}
    return report
