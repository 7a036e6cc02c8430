"""The config's sections: one dataclass per section, the sections of each task, and the names
every check refers to. No logic beyond defaults; :mod:`astrojax.config.checks` converts and
validates."""



import dataclasses
from typing import Any

DTYPES = ("float32", "bfloat16", "float16")
REMAT_POLICIES = ("none", "full", "dots_saveable", "dots_with_no_batch_dims_saveable")
PACKING_MODES = ("pack", "pad")
# Kept here (not imported from the models) so that config errors come before JAX starts;
# tests check they match the attention registry.
ATTENTION_IMPLS = ("auto", "xla", "cudnn", "pallas", "blockwise", "chunked", "ring")
CONTEXT_IMPLS = ("auto", "ring", "xla", "blockwise")  # attention impls that run with context > 1
SEQUENCE_MIXERS = ("attention", "linear", "mamba")
ROPE_SCALINGS = ("none", "linear", "dynamic", "llama3")  # tests check layers.ROPE_SCALINGS
EDGE_DECODERS = ("inner_product", "mlp", "structural")
POSITION_EMBEDDINGS = ("sinusoidal", "learned")
BAD_CHECKPOINT_POLICIES = ("fail", "fallback")
LOSS_WEIGHTINGS = ("fixed", "uncertainty")
FUSION_MODALITIES = ("catalogue", "spectrum", "climate", "network", "text")  # fusion inputs
DATACUBE_OBJECTIVES = ("masked", "supervised", "masked+supervised")
MESH_AXES = ("data", "fsdp", "context", "tensor")
# LoRA target names (PEFT / Hugging Face style); astrojax.models.lora.TARGETS maps them to
# weights and checks that it lists the same names.
LORA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down", "in_proj", "out_proj")
TEXT_VOCAB_SIZE = 259  # ids the byte tokenizer emits; tests check it matches ByteTokenizer
TEXT_CORPORA = ("descriptions", "notes")  # task lm's texts (TextDataConfig.corpus)
SCHEDULES = ("cosine", "onecycle", "cosine_restarts", "wsd")  # OptimConfig.schedule
OPTIMIZERS = ("adamw", "adamw8bit")  # OptimConfig.optimizer

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
    # Biases on the q, k and v projections (Qwen2); off keeps older checkpoints' parameters.
    qkv_bias: bool = False
    # RoPE scaling for contexts beyond pretraining, as Hugging Face's rope_parameters (see
    # layers.RopeScaling): "none"; "linear" (frequencies / factor); "dynamic" (NTK: the base
    # grows once a call's positions pass rope_original_max_len, HF's max_position_embeddings);
    # "llama3" (Llama 3.1's per-frequency blend; rope_original_max_len is HF's
    # original_max_position_embeddings).
    rope_scaling: str = "none"
    rope_scaling_factor: float = 1.0
    rope_low_freq_factor: float = 1.0  # llama3 only
    rope_high_freq_factor: float = 4.0  # llama3 only
    rope_original_max_len: int = 0  # dynamic and llama3


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
class FusionConfig:
    """The multimodal fusion model: each modality's encoder yields tokens with a modality
    embedding, a cross-modal transformer fuses the tokens of the modalities a planet has (a
    missing modality's tokens are masked out, never zero-filled), and heads read the fused
    planet token.

    ``row_columns``: the catalogue columns the row encoder reads (values with known masks).
    ``spectrum_bins`` / ``spectrum_patch``: the spectrum grid and how many bins make a token.
    ``embedding_inputs``: other modalities given as one embedding vector each (name, width),
    e.g. a graph or cube encoder's output. ``classes``: label name -> number of classes (2
    is a binary label with one logit). ``retrieval_targets``: values regressed with a Gaussian
    NLL (mean and log variance). ``loss_weighting``: "fixed" (``loss_weights``, default 1) or
    "uncertainty" (Kendall et al. 2018: a learned log variance per loss term).
    ``modality_dropout``: in training, each present modality but the catalogue row is hidden
    with this probability, so missing inputs are routine. ``climate_*``: the climate cubes'
    encoder, a DatacubeViT of width ``d_model`` (its heads and MLP width are the fusion
    model's). ``network_*``: the networks' encoder, a GraphVAE encoder of width ``d_model``
    whose graph latent mean (``network_latent_dim``) is the modality's token. ``text_*``: the
    observing notes' encoder, a byte-level Transformer of width ``d_model`` whose hidden states
    are averaged over the note. ``NAME_init``: the workdir of a single-modality run
    (``datacube``, ``graph_vae``, ``lm``); that encoder then takes the run's model (its config
    and its newest checkpoint's weights) instead of the ``NAME_*`` sizes (and the data's
    ``climate_grid`` must be the datacube run's cube grid).
    ``contrastive_weight`` > 0 adds CLIP's symmetric InfoNCE between every pair of modalities a
    planet has (projections of width ``contrastive_dim``, ``contrastive_temperature``): with
    ``data.label_fraction=0`` it is a pretraining on unlabelled planets. ``init``: the workdir
    of such a fusion run; a new run starts from all its weights but the heads'."""

    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_dim: int = 128
    row_columns: tuple[str, ...] = ()
    spectrum_bins: int = 0  # 0: no spectrum encoder
    spectrum_patch: int = 8
    spectrum_layers: int = 1
    climate_layers: int = 1
    climate_patch: tuple[int, int, int] = (2, 4, 4)  # (time, lat, lon) extent of one tubelet
    climate_stem_channels: int = 8
    climate_init: str = ""  # workdir of a datacube run: the climate encoder starts from it
    network_layers: int = 1
    network_latent_dim: int = 16
    network_init: str = ""  # workdir of a graph_vae run
    text_layers: int = 1
    text_init: str = ""  # workdir of an lm run
    embedding_inputs: tuple[tuple[str, int], ...] = ()
    classes: tuple[tuple[str, int], ...] = (("habitable", 2), ("biosignature", 2))
    retrieval_targets: tuple[str, ...] = ()
    loss_weighting: str = "fixed"
    loss_weights: tuple[tuple[str, float], ...] = ()
    modality_dropout: float = 0.2
    contrastive_weight: float = 0.0
    contrastive_dim: int = 32
    contrastive_temperature: float = 0.1
    init: str = ""  # workdir of a fusion run (a pretraining): everything but the heads from it
    attention_impl: str = "auto"
    dtype: str = "float32"
    param_dtype: str = "float32"


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
    """Task lm: the planets' texts as byte tokens. ``corpus``: "descriptions" (what the planet
    is, generator/text.py) or "notes" (what an observer writes from its catalogue row,
    generator/notes.py: another style and other facts, e.g. to fine-tune a description model
    on)."""

    seq_len: int = 256
    packing: str = "pack"
    corpus: str = "descriptions"


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
class FusionDataConfig(LoaderConfig):
    """Task fusion: which views of a planet the model reads (``modalities``, a subset of
    FUSION_MODALITIES) and how many planets have each. The catalogue row exists for every
    planet; a transmission spectrum for a share ``spectrum_rate`` of the transiting planets, on
    ``instrument``'s grid (a name of ``astrojax.data.generator.spectra.INSTRUMENTS``, or several
    joined by "+") after ``n_transits`` transits; a climate cube (``climate_grid``: time,
    levels, lat, lon) for a share ``climate_rate`` of the planets a modeller can model (radius
    and insolation known), simulated under the atmosphere the modeller assumes; a hypothesised
    metabolic network for a share ``network_rate`` of those planets (what an astrobiologist
    would propose for the modeller's world); observing notes (text written from the catalogue
    row) for a share ``text_rate`` of all planets. A modality left
    out of ``modalities`` is not read by the model (the ablations), whatever its rate.
    ``label_fraction``: the share of train planets whose labels the model may learn from
    (fixed per planet by a hash of its id; the rest are unlabelled, for pretraining and the
    scarce-label study); val and test planets are always scored. ``group_size``: consecutive
    planets of a batch that pack their cubes (networks, texts)
    together (see astrojax.models.fusion); the mesh's batch shards must divide the groups."""

    modalities: tuple[str, ...] = ("catalogue", "spectrum")
    label_fraction: float = 1.0
    climate_rate: float = 0.15
    climate_grid: tuple[int, int, int, int] = (4, 2, 8, 16)
    network_rate: float = 0.1
    text_rate: float = 0.2
    text_length: int = 264  # bytes of a note the text encoder reads (notes have at most 256)
    group_size: int = 8
    spectrum_rate: float = 0.3
    instrument: str = "nirspec_prism"
    n_transits: int = 3


@dataclasses.dataclass
class DescribeConfig:
    """Task describe: the language model writes a planet's description after ``prefix_tokens``
    soft-prompt vectors, a learned projector's image of the fusion model's planet embedding
    (what its heads read). ``prefix_tokens`` 0 is the control: the same language model trained
    the same way with no prefix, which can only learn the descriptions' base rates.
    ``projector_dim``: the hidden width of the projector (an MLP, fusion width -> hidden ->
    ``prefix_tokens`` x the LM's width). ``fusion_init``: the workdir of a ``fusion`` run; the
    fusion model is then that run's (its model section replaces ``fusion``, and the data's
    fusion fields must be its data's) and starts from its newest checkpoint. ``train_fusion``:
    also train the fusion model (default: frozen, no gradient and no optimizer state; an
    untrained fusion model must be trained). ``lm_init``: the workdir of an ``lm`` run; the
    language model is then that run's (its model section replaces ``lm``) and starts from its
    newest checkpoint. Both runs must have read the same planets and split (``planets``), so
    that held-out planets are held out of them too."""

    prefix_tokens: int = 4
    projector_dim: int = 256
    fusion_init: str = ""
    train_fusion: bool = False
    lm_init: str = ""
    fusion: FusionConfig = dataclasses.field(default_factory=FusionConfig)
    lm: TransformerConfig = dataclasses.field(default_factory=TransformerConfig)


@dataclasses.dataclass
class DescribeDataConfig(FusionDataConfig):
    """Task describe: the fusion task's inputs of a planet (the fields of FusionDataConfig)
    and its description, as byte tokens (BOS, the bytes, EOS) padded to
    ``description_length``."""

    description_length: int = 496  # the built-in descriptions have at most 491 bytes


@dataclasses.dataclass
class OptimConfig:
    """AdamW (float32 or 8-bit state) with a learning-rate schedule, global-norm clipping and
    optional gradient accumulation."""

    learning_rate: float = 3e-3
    end_learning_rate_fraction: float = 0.1
    warmup_steps: int = 20
    decay_steps: int = -1  # -1: decay over train.steps; set it to extend a run without a jump
    weight_decay: float = 0.1
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    grad_clip_norm: float = 1.0
    # --- issue 15 (helper optim): the schedule, the optimizer's state, accumulation.
    # schedule: one of SCHEDULES. "cosine": linear warmup, cosine decay to the end fraction;
    # "onecycle": optax's cosine one-cycle (rises from learning_rate / onecycle_div_factor over
    # warmup_steps, anneals to the end fraction); "cosine_restarts": SGDR, cosine cycles of
    # restart_period steps, each restarting at learning_rate (warmup in the first only);
    # "wsd": warmup, stable at learning_rate, linear decay over the last wsd_decay_fraction.
    schedule: str = "cosine"
    onecycle_div_factor: float = 25.0
    restart_period: int = 100
    wsd_decay_fraction: float = 0.2
    # optimizer: one of OPTIMIZERS. "adamw8bit" keeps both moments as 8-bit codes with a
    # float32 scale per block of block_size elements along a parameter's last axis
    # (astrojax.train.adamw8bit); parameters of fewer than min_8bit_size elements and the
    # token embedding keep float32 moments, as in bitsandbytes (stable_embedding=False: the
    # embedding's in 8 bits too; it is a fifth of a Llama-1B's parameters).
    optimizer: str = "adamw"
    block_size: int = 2048
    min_8bit_size: int = 4096
    stable_embedding: bool = True
    # accumulation_steps k > 1: each train step splits its global batch into k microbatches
    # (a scan inside the jitted step), averages their gradients and makes one update.
    accumulation_steps: int = 1


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
    # Profiling and memory: profile_steps > 0 writes a jax.profiler trace of that many steps,
    # from step profile_start_step + 1 (after compilation), under WORKDIR/tensorboard/plugins/
    # profile (TensorBoard's Profile tab; a Perfetto trace beside it).
    profile_steps: int = 0
    profile_start_step: int = 5
    # Host offload through JAX memory kinds: the optimizer's moments (and with offload_params
    # the parameters) live in pinned host memory between steps and are copied to the device
    # for the update (MaxText's optimizer/parameter_memory_host_offload). No effect on CPU,
    # whose host memory is its device memory (a warning says so).
    offload_optimizer: bool = False
    offload_params: bool = False
    # Several processes (hosts), with train.distributed=True: where process 0's coordinator
    # listens ("host:port"), how many processes and this one's id (0..num_processes-1). Set all
    # three, or none to let JAX detect them (SLURM, Open MPI, Cloud TPU, Kubernetes).
    coordinator_address: str = ""
    num_processes: int = -1
    process_id: int = -1
    # Early stopping and the best checkpoints. best_metric: an eval metric, e.g. "eval/loss" or
    # "eval/heldout_auc" ("" = off). With one, a checkpoint is also saved at every eval, the
    # keep_best best by it are kept besides the max_checkpoints_to_keep newest, and the test
    # split scores the best one. best_mode: "min", "max", or "" to infer it from the name
    # (min for loss, mse, bce, kl, ece, nll, perplexity, bits...; max for accuracy, auc, ap,
    # r2). early_stopping_patience: evals in a row without an improvement of more than
    # early_stopping_min_delta on the best so far before the run stops (0: never stops early).
    best_metric: str = ""
    best_mode: str = ""
    keep_best: int = 1
    early_stopping_patience: int = 0
    early_stopping_min_delta: float = 0.0


@dataclasses.dataclass
class LoRAConfig:
    """Low-rank adapters (astrojax.models.lora). ``rank`` 0: off, the whole model trains.
    ``rank`` > 0: the model's weights come from ``base`` and stay frozen; only adapters of that
    rank on the ``targets`` train (and only they have optimizer state and are checkpointed),
    adding ``alpha / rank * B(A(dropout(x)))`` to each targeted projection (PEFT's
    convention). ``targets``: names from LORA_TARGETS (q, k, v, o: attention; gate, up, down:
    the SwiGLU MLP; in_proj, out_proj: Mamba). ``base``: the workdir of a run of the same task
    and model config (its newest checkpoint's parameters; a Hugging Face folder is refused:
    the tasks read byte tokens, and from_hf + apply_lora adapt one from Python)."""

    rank: int = 0
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("q", "k", "v", "o", "gate", "up", "down")
    base: str = ""


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
    "fusion": TaskSections(FusionConfig, FusionDataConfig),
    "describe": TaskSections(DescribeConfig, DescribeDataConfig),
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
    lora: LoRAConfig = dataclasses.field(default_factory=LoRAConfig)

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


# ---- Meta-cognitive control (issue 17, astrojax.metacognition): not a section of a run's
# Config; benchmarks/metacognition.py and python -m astrojax.predict read it.
OBSERVATIONS = ("host_star", "rv_mass", "spectrum")  # what astrojax.metacognition can acquire


@dataclasses.dataclass
class MetacognitionConfig:
    """Calibrated uncertainty and what to observe next for the fusion model.

    ``ensemble_size``: members of the deep ensemble (the same config, ``train.seed`` and
    ``data.shuffle_seed`` + member index). ``coverage``: the share of planets a selective
    prediction keeps (the confidence threshold is chosen on val). ``label``: the binary label
    the expected information gain is about. ``draws``: plausible outcomes per candidate
    observation (the observation as it came out for the ``draws`` train planets nearest in the
    observed catalogue row). ``costs``: the observing cost of each kind of OBSERVATIONS, in
    one unit (hours of telescope time, roughly): ``host_star`` a spectroscopic
    characterisation of the host (Teff, radius, mass where unpublished), ``rv_mass`` a
    radial-velocity campaign (the planet's mass and eccentricity), ``spectrum`` one transit of
    a transmission spectrum (a spectrum with n transits costs n times it).
    ``spectrum_transits``: the transit counts a spectrum may be taken (or extended) to."""

    ensemble_size: int = 4
    coverage: float = 0.8
    label: str = "habitable"
    draws: int = 16
    costs: tuple[tuple[str, float], ...] = (("host_star", 2.0), ("rv_mass", 40.0),
                                            ("spectrum", 8.0))
    spectrum_transits: tuple[int, ...] = (1, 3, 10, 30)
