"""Typed run configuration: nested dataclasses, conversion, and start-up validation.

A config file in ``configs/`` defines ``get_config()`` returning a :class:`Config`. The CLI loads
it with ``ml_collections.config_flags`` so that any field can be overridden from the command
line (``--config.train.steps=200``); library users build the same dataclasses in Python.
:func:`validate` checks everything that can be checked before JAX does any work and raises
:class:`ConfigError` naming the offending key and what it accepts.
"""


import dataclasses
import json
import math
import typing
from collections.abc import Mapping
from typing import Any

DTYPES = ("float32", "bfloat16", "float16")
REMAT_POLICIES = ("none", "full", "dots_saveable", "dots_with_no_batch_dims_saveable")
PACKING_MODES = ("pack", "pad")
# Kept here (not imported from the models) so that config errors come before JAX starts;
# tests check they match the attention registry.
ATTENTION_IMPLS = ("auto", "xla", "cudnn", "pallas", "blockwise", "ring")
SEQUENCE_MIXERS = ("attention", "linear", "mamba")
EDGE_DECODERS = ("inner_product", "mlp", "structural")
POSITION_EMBEDDINGS = ("sinusoidal", "learned")
BAD_CHECKPOINT_POLICIES = ("fail", "fallback")
DATACUBE_OBJECTIVES = ("masked", "supervised", "masked+supervised")
TEXT_VOCAB_SIZE = 259  # ids the byte tokenizer emits; tests check it matches ByteTokenizer

# Logical axis name -> mesh axis (or axes, or None for replicated). Model code only ever names
# the logical axes on the left; this table is the single place that decides the layout.
DEFAULT_LOGICAL_AXIS_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("sequence", "context"),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("layers", None),
    ("norm", None),
    # The graph models' widths (residual, attention, MLP): small, and message passing gathers
    # along nodes, so only the data is split.
    ("graph_embed", None),
    ("graph_heads", None),
    ("graph_mlp", None),
)


class ConfigError(ValueError):
    """A configuration value is invalid. ``key`` is its dotted path, e.g. ``train.steps``."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"config.{key}: {message}")


@dataclasses.dataclass
class MeshConfig:
    """Device mesh: axis sizes (-1 = whatever devices remain; at most one -1)."""

    data: int = -1
    fsdp: int = 1
    # Splits the transformer's sequences (the "sequence" logical axis; task lm only): the
    # residual stream is sharded along it and attention runs as ring attention (impl auto or
    # ring) or gathers keys and values (xla, blockwise). Pallas and cuDNN cannot split it.
    context: int = 1
    tensor: int = 1
    logical_axis_rules: tuple[tuple[str, Any], ...] = DEFAULT_LOGICAL_AXIS_RULES


@dataclasses.dataclass
class TransformerConfig:
    """Decoder-only Llama-style transformer."""

    vocab_size: int = 384  # byte tokenizer uses 259 ids; padded up to a multiple of 128
    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 32
    mlp_dim: int = 384
    max_seq_len: int = 256
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-6
    tie_embeddings: bool = True
    attention_impl: str = "auto"
    # > 0: each token sees itself and the previous sliding_window tokens, sliding_window + 1
    # keys in all. Hugging Face (Mistral, Qwen2) counts the token itself: its sliding_window=W
    # means W keys (kv > q - W), i.e. ours W - 1; transformer.sliding_window_from_hf converts.
    sliding_window: int = 0
    # Sequence mixer of each layer, cycled over the stack: ("mamba", "attention") alternates.
    mixers: tuple[str, ...] = ("attention",)
    scan_layers: bool = True
    remat_policy: str = "none"
    param_dtype: str = "float32"
    dtype: str = "float32"


@dataclasses.dataclass
class GraphVAEConfig:
    """Graph VAE on metabolic networks: graph transformer encoder, node and graph latents."""

    hidden_dim: int = 64
    num_layers: int = 3
    num_heads: int = 4
    mlp_dim: int = 128
    node_latent_dim: int = 16
    graph_latent_dim: int = 32
    random_walk_steps: int = 8  # positional encoding: return probabilities after 2..2k steps
    edge_decoder: str = "inner_product"
    # Weight of the KL terms once warmed up. At 1.0 sampled 16-d node latents are too noisy to
    # decode links (link accuracy stays at chance); 0.01 trades a little KL for decodable links.
    beta: float = 0.01
    kl_warmup_steps: int = 100  # beta rises linearly from 0 over these steps
    feature_weight: float = 1.0  # weight of the node-feature reconstruction loss
    summary_weight: float = 1.0  # weight of the graph-summary reconstruction (graph latent)
    dtype: str = "float32"


@dataclasses.dataclass
class DatacubeConfig:
    """3D convolution stem + tubelet ViT over climate datacubes (variables x time x level x
    lat x lon); levels and variables are the channels.

    ``objective``: "masked" is masked-tubelet reconstruction (VideoMAE: the encoder sees
    ``1 - mask_ratio`` of the tubelets, a light decoder reconstructs the others, loss on the
    masked ones only); "supervised" regresses the label columns named in ``targets`` from the
    whole cube; "masked+supervised" adds both losses (the regression then reads the visible
    tokens). ``targets`` should be labels no closed-form rule reads off the cube
    (benchmarks/datacube_baselines.py measures which)."""

    patch_size: tuple[int, int, int] = (2, 4, 4)  # (time, lat, lon) extent of one tubelet
    stem_channels: int = 32  # channels of the full-resolution conv features (x2 at half res)
    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 4
    mlp_dim: int = 256
    position_embedding: str = "sinusoidal"
    attention_impl: str = "auto"
    dtype: str = "float32"
    param_dtype: str = "float32"
    objective: str = "masked+supervised"
    targets: tuple[str, ...] = ("equilibrium_temperature_k", "log10_surface_pressure_bar")
    mask_ratio: float = 0.75  # fraction of tubelets hidden from the encoder (masked objectives)
    decoder_dim: int = 64
    decoder_layers: int = 1
    decoder_heads: int = 4
    reconstruction_weight: float = 1.0
    regression_weight: float = 1.0


@dataclasses.dataclass
class PlanetsConfig:
    """The built-in planet population and the one train / val / test split every task honours.

    A planet's split depends only on its id and ``split_seed`` (a hash of both), so growing the
    population, or adding a modality, never moves a planet from one split to another. The
    periodic evals score the val split; after the last step the run is scored on test too.
    With ``data.cube_store`` set, the store's samples are the planets (``num_planets`` and
    ``seed`` then only describe the built-in store)."""

    num_planets: int = 4096
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0


@dataclasses.dataclass
class LoaderConfig:
    """How Grain reads a task's data (every task's ``data`` section has these)."""

    shuffle_seed: int = 0
    worker_count: int = 0
    prefetch_buffer_size: int = 2


@dataclasses.dataclass
class TextDataConfig(LoaderConfig):
    """Task lm: the planets' descriptions as byte tokens."""

    seq_len: int = 256
    packing: str = "pack"


@dataclasses.dataclass
class GraphDataConfig(LoaderConfig):
    """Task graph_vae: one metabolic network per planet, batched in padded sub-batches.

    A global batch of train.global_batch_size graphs is cut into sub-batches of
    graphs_per_sub_batch graphs, each padded to a bucket (nodes, edges); () derives the buckets
    from the data. Sub-batches are split over the data axes, so their number must be divisible
    by the data-parallel size; results do not depend on the number of devices."""

    graphs_per_sub_batch: int = 4
    graph_buckets: tuple[tuple[int, int], ...] = ()
    link_test_fraction: float = 0.1  # each held-out planet's links hidden from the encoder
    link_split_seed: int = 0


@dataclasses.dataclass
class LinkPredDataConfig(LoaderConfig):
    """Task graph_linkpred: link prediction on one real network."""

    # An SBML file, or "cobra:textbook" for a model that ships inside an installed package.
    sbml_path: str = ""
    link_val_fraction: float = 0.05
    link_test_fraction: float = 0.1
    link_split_seed: int = 0
    # 0 trains on reconstructing the links the encoder sees (VGAE); k >= 2 deals the training
    # links into k folds and each step predicts one fold hidden from the graph.
    link_target_folds: int = 0


@dataclasses.dataclass
class CubeDataConfig(LoaderConfig):
    """Task datacube. cube_store is a store path or TensorStore kvstore URL (file://, gs://,
    s3://, memory://); "" builds the built-in population's cubes once into the cache directory
    ($ASTROJAX_CACHE, default ~/.cache/astrojax) on the grid below (that of built cubes)."""

    cube_store: str = ""
    cube_time_steps: int = 8
    cube_levels: int = 4
    cube_lat: int = 16
    cube_lon: int = 32
    cube_crop: tuple[int, int, int] = (0, 0, 0)  # random (time, lat, lon) crop; 0 = whole axis


@dataclasses.dataclass
class OptimConfig:
    """AdamW with linear warmup, cosine decay and global-norm clipping."""

    learning_rate: float = 3e-3
    end_learning_rate_fraction: float = 0.1
    warmup_steps: int = 20
    decay_steps: int = -1  # -1: decay over train.steps; set it to extend a run without a jump
    weight_decay: float = 0.1
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    grad_clip_norm: float = 1.0


@dataclasses.dataclass
class TrainConfig:
    """Length of the run and how often it evaluates, logs and checkpoints."""

    steps: int = 300
    global_batch_size: int = 16
    seed: int = 0
    log_every: int = 10
    eval_every: int = 100
    eval_batches: int = 4
    checkpoint_every: int = 100
    max_checkpoints_to_keep: int = 3
    async_checkpointing: bool = True
    distributed: bool = False
    # A step whose loss or gradient is NaN or Inf is skipped (the state stays as it was); after
    # this many in a row the run stops with an error naming the last finite checkpoint.
    max_nonfinite_steps: int = 5
    # A newest checkpoint that cannot be read: "fail" stops with one line naming it and the one
    # before; "fallback" (for unattended jobs) moves it aside and resumes from the one before.
    on_bad_checkpoint: str = "fail"


@dataclasses.dataclass(frozen=True)
class TaskSections:
    """The section types of one task's config: its model, its data, and whether it reads the
    planet population (``planets``)."""

    model: type
    data: type
    planets: bool = True


# What each task's config holds. Kept here (not in astrojax.tasks) so that configs load and
# validate before JAX starts; tests check it matches the task registry.
TASK_SECTIONS: dict[str, TaskSections] = {
    "lm": TaskSections(TransformerConfig, TextDataConfig),
    "graph_vae": TaskSections(GraphVAEConfig, GraphDataConfig),
    "graph_linkpred": TaskSections(GraphVAEConfig, LinkPredDataConfig, planets=False),
    "datacube": TaskSections(DatacubeConfig, CubeDataConfig),
}
TASK_NAMES = tuple(TASK_SECTIONS)


@dataclasses.dataclass
class Config:
    """One run: which task, and the sections it uses. ``model`` and ``data`` are the task's own
    (``TASK_SECTIONS``); ``planets`` is None for a task that does not read the population.
    Build it as ``Config(task="datacube")``: missing sections get the task's defaults."""

    task: str = "lm"
    model: Any = None
    data: Any = None
    planets: PlanetsConfig | None = None
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)

    def __post_init__(self) -> None:
        sections = TASK_SECTIONS.get(self.task)
        if sections is None:
            return  # validate() names the bad task
        if self.model is None:
            self.model = sections.model()
        if self.data is None:
            self.data = sections.data()
        if self.planets is None and sections.planets:
            self.planets = PlanetsConfig()


# ----------------------------------------------------------------------------------------------
# Conversion


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready nested dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Builds dataclass ``cls`` from a nested mapping, checking keys and types on the way. For
    a :class:`Config`, ``model``, ``data`` and ``planets`` take the types of its ``task``."""
    hints = typing.get_type_hints(cls)
    if cls is Config:
        task = data.get("task", Config.task)
        _one_of("task", task, TASK_NAMES)
        sections = TASK_SECTIONS[task]
        hints.update(model=sections.model, data=sections.data, planets=PlanetsConfig)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise ConfigError(key, f"unknown key; allowed keys: {', '.join(fields)}")
        kwargs[name] = None if value is None else _coerce(hints[name], value, key)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping of {hint.__name__} fields, got {value!r}")
        return from_dict(hint, value, prefix=f"{key}.")
    origin = typing.get_origin(hint)
    if origin is tuple:
        return _to_tuples(value)
    if hint in (int, float, str, bool):
        _check_scalar_type(hint, value, key)
        return float(value) if hint is float else value
    return value


def _to_tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_to_tuples(v) for v in value)
    return value


def _check_scalar_type(hint: type, value: Any, key: str) -> None:
    ok = isinstance(value, hint)
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok:
        raise ConfigError(key, f"expected {hint.__name__}, got {type(value).__name__} {value!r}")
    if hint is float and not math.isfinite(value):  # NaN passes every bound check below
        raise ConfigError(key, f"must be a finite number, got {value!r}")


# ----------------------------------------------------------------------------------------------
# Validation
#
# Each section type has its own checks (``_SECTION_CHECKS``); a data section also checks what
# it needs of its model. Constraints that come from the model's parameters (a width that the
# mesh must divide) are not repeated here: the task asks the model itself, from its abstract
# parameters' logical axes (``astrojax.tasks.base.Task.check_mesh``), once JAX is up.


def validate(cfg: Config, num_devices: int | None = None) -> Config:
    """Checks every field; raises ConfigError naming the first bad key. Returns ``cfg``."""
    _one_of("task", cfg.task, TASK_NAMES)
    _check_sections_match_task(cfg)
    _check_types(cfg, "")
    for name in ("planets", "data", "model", "optim", "train"):
        section = getattr(cfg, name)
        if section is not None:
            _SECTION_CHECKS[type(section)](cfg, section, f"{name}.")
    if num_devices is not None:
        sizes = resolve_mesh_shape(cfg.mesh, num_devices)
        _check_mesh(cfg, sizes)
    return cfg


def _check_sections_match_task(cfg: Config) -> None:
    sections = TASK_SECTIONS[cfg.task]
    for name in ("model", "data"):
        expected, value = getattr(sections, name), getattr(cfg, name)
        if type(value) is not expected:
            raise ConfigError(name, f"task {cfg.task!r} takes a {expected.__name__}, got "
                                    f"{type(value).__name__}; build the config with "
                                    f"Config(task={cfg.task!r}) so its sections match")
    if sections.planets and not isinstance(cfg.planets, PlanetsConfig):
        raise ConfigError("planets", f"task {cfg.task!r} reads the planet population and needs "
                                     f"a PlanetsConfig, got {type(cfg.planets).__name__}")
    if not sections.planets and cfg.planets is not None:
        raise ConfigError("planets", f"task {cfg.task!r} does not read the planet population; "
                                     "leave it None")


def _check_types(obj: Any, prefix: str) -> None:
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        key = f"{prefix}{f.name}"
        value = getattr(obj, f.name)
        hint = hints[f.name]
        if dataclasses.is_dataclass(value):
            _check_types(value, f"{key}.")
        elif dataclasses.is_dataclass(hint):
            raise ConfigError(key, f"expected {hint.__name__}, got {type(value).__name__}")
        elif hint in (int, float, str, bool):
            _check_scalar_type(hint, value, key)


def _one_of(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(key, f"{value!r} is not one of {', '.join(map(str, allowed))}")


def _positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(key, f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _fraction(key: str, value: float, low: float = 0.0, high: float = 1.0) -> None:
    if not low < value < high:
        raise ConfigError(key, f"must be in ({low:g}, {high:g}), got {value}")


def _check_transformer(cfg: Config, m: TransformerConfig, p: str) -> None:
    for name in ("vocab_size", "d_model", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                 "mlp_dim", "max_seq_len"):
        _positive(f"{p}{name}", getattr(m, name))
    if m.num_heads % m.num_kv_heads:
        raise ConfigError(f"{p}num_kv_heads",
                          f"{m.num_kv_heads} must divide {p}num_heads={m.num_heads}")
    if m.head_dim % 2:
        raise ConfigError(f"{p}head_dim", f"must be even for rotary embeddings, got {m.head_dim}")
    _one_of(f"{p}remat_policy", m.remat_policy, REMAT_POLICIES)
    _one_of(f"{p}attention_impl", m.attention_impl, ATTENTION_IMPLS)
    _positive(f"{p}sliding_window", m.sliding_window, allow_zero=True)
    if not m.mixers:
        raise ConfigError(f"{p}mixers", "needs at least one mixer")
    for mixer in m.mixers:
        _one_of(f"{p}mixers", mixer, SEQUENCE_MIXERS)
    if m.scan_layers and len(set(m.mixers)) > 1:
        raise ConfigError(f"{p}scan_layers", f"a hybrid stack (mixers={m.mixers}) needs "
                                             "scan_layers=False: scanned layers must be alike")
    _one_of(f"{p}param_dtype", m.param_dtype, DTYPES)
    _one_of(f"{p}dtype", m.dtype, DTYPES)


def _check_graph_vae(cfg: Config, g: GraphVAEConfig, p: str) -> None:
    for name in ("hidden_dim", "num_layers", "num_heads", "mlp_dim", "node_latent_dim",
                 "graph_latent_dim"):
        _positive(f"{p}{name}", getattr(g, name))
    if g.hidden_dim % g.num_heads:
        raise ConfigError(f"{p}num_heads",
                          f"{g.num_heads} must divide {p}hidden_dim={g.hidden_dim}")
    _positive(f"{p}random_walk_steps", g.random_walk_steps, allow_zero=True)
    _one_of(f"{p}edge_decoder", g.edge_decoder, EDGE_DECODERS)
    for name in ("beta", "kl_warmup_steps", "feature_weight", "summary_weight"):
        _positive(f"{p}{name}", getattr(g, name), allow_zero=True)
    _one_of(f"{p}dtype", g.dtype, DTYPES)
    if g.edge_decoder == "structural" and (not isinstance(cfg.data, LinkPredDataConfig)
                                           or cfg.data.link_target_folds < 2):
        raise ConfigError(f"{p}edge_decoder",
                          "'structural' reads pair scores of hidden links: it needs "
                          "task='graph_linkpred' and data.link_target_folds >= 2")


def _check_datacube(cfg: Config, c: DatacubeConfig, p: str) -> None:
    if len(c.patch_size) != 3 or any(not isinstance(x, int) or x < 1 for x in c.patch_size):
        raise ConfigError(f"{p}patch_size",
                          f"expected 3 positive ints (time, lat, lon), got {c.patch_size!r}")
    for name in ("stem_channels", "d_model", "num_layers", "num_heads", "mlp_dim"):
        _positive(f"{p}{name}", getattr(c, name))
    if c.d_model % c.num_heads:
        raise ConfigError(f"{p}num_heads", f"{c.num_heads} must divide {p}d_model={c.d_model}")
    _one_of(f"{p}position_embedding", c.position_embedding, POSITION_EMBEDDINGS)
    _one_of(f"{p}attention_impl", c.attention_impl, ATTENTION_IMPLS)
    _one_of(f"{p}dtype", c.dtype, DTYPES)
    _one_of(f"{p}param_dtype", c.param_dtype, DTYPES)
    _one_of(f"{p}objective", c.objective, DATACUBE_OBJECTIVES)
    for name in ("reconstruction_weight", "regression_weight"):
        _positive(f"{p}{name}", getattr(c, name), allow_zero=True)
    if "masked" in c.objective:
        if not 0.0 < c.mask_ratio < 1.0:
            raise ConfigError(f"{p}mask_ratio", f"must be in (0, 1) for objective "
                                                f"{c.objective!r}, got {c.mask_ratio!r}")
        for name in ("decoder_dim", "decoder_layers", "decoder_heads"):
            _positive(f"{p}{name}", getattr(c, name))
        if c.decoder_dim % c.decoder_heads or c.decoder_dim % 2:
            raise ConfigError(f"{p}decoder_dim",
                              f"{c.decoder_dim} must be even and divisible by "
                              f"{p}decoder_heads={c.decoder_heads}")
    if "supervised" in c.objective and not c.targets:
        raise ConfigError(f"{p}targets",
                          f"objective {c.objective!r} needs at least one label to regress")
    if any(not isinstance(t, str) or not t for t in c.targets) or \
            len(set(c.targets)) != len(c.targets):
        raise ConfigError(f"{p}targets", f"expected distinct label names, got {c.targets!r}")


def _check_planets(cfg: Config, s: PlanetsConfig, p: str) -> None:
    _positive(f"{p}num_planets", s.num_planets)
    _positive(f"{p}seed", s.seed, allow_zero=True)
    _positive(f"{p}split_seed", s.split_seed, allow_zero=True)
    _fraction(f"{p}val_fraction", s.val_fraction)
    if not 0.0 <= s.test_fraction < 1.0:
        raise ConfigError(f"{p}test_fraction", f"must be in [0, 1), got {s.test_fraction}")
    if s.val_fraction + s.test_fraction >= 1.0:
        raise ConfigError(f"{p}test_fraction",
                          f"{p}val_fraction + {p}test_fraction = "
                          f"{s.val_fraction + s.test_fraction:g} leaves no planet to train on")


def _check_loader(d: LoaderConfig, p: str) -> None:
    _positive(f"{p}worker_count", d.worker_count, allow_zero=True)
    _positive(f"{p}prefetch_buffer_size", d.prefetch_buffer_size, allow_zero=True)


def _check_text_data(cfg: Config, d: TextDataConfig, p: str) -> None:
    _check_loader(d, p)
    _positive(f"{p}seq_len", d.seq_len)
    _one_of(f"{p}packing", d.packing, PACKING_MODES)
    if d.seq_len > cfg.model.max_seq_len:
        raise ConfigError(f"{p}seq_len",
                          f"{d.seq_len} exceeds model.max_seq_len={cfg.model.max_seq_len}")
    if cfg.model.vocab_size < TEXT_VOCAB_SIZE:
        raise ConfigError("model.vocab_size",
                          f"{cfg.model.vocab_size} is smaller than the byte tokenizer's "
                          f"{TEXT_VOCAB_SIZE} ids (out-of-range ids would embed as NaN)")


def _check_graph_data(cfg: Config, d: GraphDataConfig, p: str) -> None:
    _check_loader(d, p)
    _positive(f"{p}graphs_per_sub_batch", d.graphs_per_sub_batch)
    if cfg.train.global_batch_size % d.graphs_per_sub_batch:
        raise ConfigError("train.global_batch_size",
                          f"{cfg.train.global_batch_size} graphs do not split into sub-batches "
                          f"of {p}graphs_per_sub_batch={d.graphs_per_sub_batch}")
    for i, bucket in enumerate(d.graph_buckets):
        if len(bucket) != 2 or any(not isinstance(v, int) or v < 1 for v in bucket):
            raise ConfigError(f"{p}graph_buckets[{i}]",
                              f"expected a pair of positive ints (nodes, edges), got {bucket!r}")
    _fraction(f"{p}link_test_fraction", d.link_test_fraction, high=0.5)


def _check_linkpred_data(cfg: Config, d: LinkPredDataConfig, p: str) -> None:
    _check_loader(d, p)
    for name in ("link_val_fraction", "link_test_fraction"):
        _fraction(f"{p}{name}", getattr(d, name), high=0.5)
    if d.link_target_folds == 1 or d.link_target_folds < 0:
        raise ConfigError(f"{p}link_target_folds",
                          f"must be 0 (reconstruct the visible links) or >= 2, got "
                          f"{d.link_target_folds}")
    if cfg.train.global_batch_size != 1:
        raise ConfigError("train.global_batch_size",
                          f"graph_linkpred's batch is its one network: use 1, got "
                          f"{cfg.train.global_batch_size}")


def _check_cube_data(cfg: Config, d: CubeDataConfig, p: str) -> None:
    _check_loader(d, p)
    for name in ("cube_time_steps", "cube_levels", "cube_lat", "cube_lon"):
        _positive(f"{p}{name}", getattr(d, name))
    if len(d.cube_crop) != 3 or any(not isinstance(c, int) or c < 0 for c in d.cube_crop):
        raise ConfigError(f"{p}cube_crop", f"expected 3 sizes >= 0 (time, lat, lon; 0 = whole "
                                           f"axis), got {d.cube_crop!r}")


def _check_optim(cfg: Config, o: OptimConfig, p: str) -> None:
    _positive(f"{p}learning_rate", o.learning_rate)
    if not 0.0 <= o.end_learning_rate_fraction <= 1.0:
        raise ConfigError(f"{p}end_learning_rate_fraction",
                          f"must be in [0, 1], got {o.end_learning_rate_fraction}")
    _positive(f"{p}warmup_steps", o.warmup_steps, allow_zero=True)
    if o.decay_steps != -1:
        _positive(f"{p}decay_steps", o.decay_steps)
    _positive(f"{p}weight_decay", o.weight_decay, allow_zero=True)
    for name in ("b1", "b2"):
        if not 0.0 <= getattr(o, name) < 1.0:
            raise ConfigError(f"{p}{name}", f"must be in [0, 1), got {getattr(o, name)}")
    _positive(f"{p}grad_clip_norm", o.grad_clip_norm, allow_zero=True)


def _check_train(cfg: Config, t: TrainConfig, p: str) -> None:
    for name in ("steps", "global_batch_size", "log_every", "eval_every", "checkpoint_every",
                 "max_checkpoints_to_keep", "max_nonfinite_steps"):
        _positive(f"{p}{name}", getattr(t, name))
    _positive(f"{p}eval_batches", t.eval_batches, allow_zero=True)
    _one_of(f"{p}on_bad_checkpoint", t.on_bad_checkpoint, BAD_CHECKPOINT_POLICIES)


_SECTION_CHECKS = {
    TransformerConfig: _check_transformer, GraphVAEConfig: _check_graph_vae,
    DatacubeConfig: _check_datacube, PlanetsConfig: _check_planets,
    TextDataConfig: _check_text_data, GraphDataConfig: _check_graph_data,
    LinkPredDataConfig: _check_linkpred_data, CubeDataConfig: _check_cube_data,
    OptimConfig: _check_optim, TrainConfig: _check_train,
}

MESH_AXES = ("data", "fsdp", "context", "tensor")


def resolve_mesh_shape(mesh: MeshConfig, num_devices: int) -> dict[str, int]:
    """Mesh axis sizes with -1 filled in; raises ConfigError if they cannot fit ``num_devices``."""
    sizes = {axis: getattr(mesh, axis) for axis in MESH_AXES}
    for axis, size in sizes.items():
        if size == 0 or size < -1:
            raise ConfigError(f"mesh.{axis}", f"must be a positive size or -1, got {size}")
    fill = [axis for axis, size in sizes.items() if size == -1]
    if len(fill) > 1:
        raise ConfigError(f"mesh.{fill[1]}",
                          f"only one mesh axis may be -1, got -1 for {', '.join(fill)}")
    fixed = math.prod(size for size in sizes.values() if size != -1)
    if fill:
        if num_devices % fixed:
            raise ConfigError(f"mesh.{fill[0]}",
                              f"cannot fill: {num_devices} devices do not divide by the other "
                              f"axes' product {fixed}")
        sizes[fill[0]] = num_devices // fixed
    elif fixed != num_devices:
        shape = " x ".join(f"{a}={s}" for a, s in sizes.items())
        raise ConfigError("mesh", f"{shape} needs {fixed} devices, but {num_devices} are "
                                  f"available (set one axis to -1 to fill)")
    return sizes


CONTEXT_IMPLS = ("auto", "ring", "xla", "blockwise")  # attention impls that run with context > 1


def _check_mesh(cfg: Config, sizes: dict[str, int]) -> None:
    """What the data and the sequence split need of the mesh (the model's parameters are
    checked by the task, from their logical axes)."""
    data_parallel = sizes["data"] * sizes["fsdp"]
    where = f"(mesh.data={sizes['data']} x mesh.fsdp={sizes['fsdp']})"
    if sizes["context"] > 1:
        _check_context(cfg, sizes["context"])
    d = cfg.data
    if isinstance(d, GraphDataConfig):
        sub_batches = cfg.train.global_batch_size // d.graphs_per_sub_batch
        if sub_batches % data_parallel:
            raise ConfigError("data.graphs_per_sub_batch",
                              f"{sub_batches} sub-batches of {d.graphs_per_sub_batch} graphs "
                              f"(train.global_batch_size={cfg.train.global_batch_size}) do not "
                              f"split over the data-parallel size {data_parallel} {where}")
    elif isinstance(d, LinkPredDataConfig):
        if data_parallel != 1:
            raise ConfigError("mesh.data", f"graph_linkpred trains on one network, which does "
                                           f"not split over a data-parallel size of "
                                           f"{data_parallel} {where}: use mesh.data=1, "
                                           "mesh.fsdp=1")
    elif cfg.train.global_batch_size % data_parallel:
        raise ConfigError("train.global_batch_size",
                          f"{cfg.train.global_batch_size} is not divisible by the data-parallel "
                          f"size {data_parallel} {where}")


def _check_context(cfg: Config, context: int) -> None:
    if not isinstance(cfg.model, TransformerConfig):
        raise ConfigError("mesh.context", f"{context} splits the transformer's sequences (task "
                                          f"lm); task {cfg.task!r} has none to split: use 1")
    impl = cfg.model.attention_impl
    if impl not in CONTEXT_IMPLS:
        raise ConfigError("model.attention_impl",
                          f"{impl!r} cannot run on a sequence split over mesh.context={context}; "
                          f"use one of {', '.join(CONTEXT_IMPLS)}")
    chunks = context * (2 if impl in ("auto", "ring") else 1)
    if cfg.data.seq_len % chunks:
        raise ConfigError("data.seq_len", f"{cfg.data.seq_len} does not split into {chunks} "
                                          f"chunks (mesh.context={context}"
                                          + (", x 2 for ring attention's zig-zag)"
                                             if chunks > context else ")"))
