"""Conversion (dicts to the sections and back) and start-up validation of a config; the
run-level sections' checks (optim, train, lora, mesh) are in :mod:`astrojax.config.run_checks`.

:func:`validate` checks everything that can be checked before JAX does any work and raises
:class:`~astrojax.config.sections.ConfigError` naming the offending key and what it accepts.
"""

import dataclasses
import json
import math
import typing
from collections.abc import Mapping
from typing import Any

from astrojax.config.run_checks import (
    _check_lora,
    _check_mesh,
    _check_optim,
    _check_train,
    _fraction,
    _one_of,
    _positive,
    resolve_mesh_shape,
)
from astrojax.config.sections import (
    ATTENTION_IMPLS,
    DATACUBE_OBJECTIVES,
    DTYPES,
    EDGE_DECODERS,
    FUSION_MODALITIES,
    LOSS_WEIGHTINGS,
    PACKING_MODES,
    POSITION_EMBEDDINGS,
    REMAT_POLICIES,
    ROPE_SCALINGS,
    SEQUENCE_MIXERS,
    TASK_NAMES,
    TASK_SECTIONS,
    TEXT_CORPORA,
    TEXT_VOCAB_SIZE,
    Config,
    ConfigError,
    CubeDataConfig,
    DatacubeConfig,
    DescribeConfig,
    DescribeDataConfig,
    FusionConfig,
    FusionDataConfig,
    GraphDataConfig,
    GraphVAEConfig,
    LinkPredDataConfig,
    LoaderConfig,
    LoRAConfig,
    OptimConfig,
    PlanetsConfig,
    TextDataConfig,
    TrainConfig,
    TransformerConfig,
)

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
    for name in ("planets", "data", "model", "optim", "train", "lora"):
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
    if m.qkv_bias and "mamba" in m.mixers and len(set(m.mixers)) == 1:
        raise ConfigError(f"{p}qkv_bias", "Mamba layers have no q/k/v projections to bias")
    _check_rope_scaling(m, p)


def _check_rope_scaling(m: TransformerConfig, p: str) -> None:
    _one_of(f"{p}rope_scaling", m.rope_scaling, ROPE_SCALINGS)
    if m.rope_scaling == "none":
        defaults = TransformerConfig()
        for name in ("rope_scaling_factor", "rope_low_freq_factor", "rope_high_freq_factor",
                     "rope_original_max_len"):
            if getattr(m, name) != getattr(defaults, name):
                raise ConfigError(f"{p}{name}", f"{getattr(m, name)} does nothing with "
                                                f"{p}rope_scaling='none'")
        return
    if not m.rope_scaling_factor >= 1.0:
        raise ConfigError(f"{p}rope_scaling_factor", f"must be >= 1, got {m.rope_scaling_factor}")
    if m.rope_scaling in ("dynamic", "llama3"):
        _positive(f"{p}rope_original_max_len", m.rope_original_max_len)
    if m.rope_scaling == "llama3":
        _positive(f"{p}rope_low_freq_factor", m.rope_low_freq_factor)
        if not m.rope_high_freq_factor > m.rope_low_freq_factor:
            raise ConfigError(f"{p}rope_high_freq_factor",
                              f"{m.rope_high_freq_factor} must exceed "
                              f"{p}rope_low_freq_factor={m.rope_low_freq_factor}")


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
    _one_of(f"{p}corpus", d.corpus, TEXT_CORPORA)
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


def _check_fusion(cfg: Config, f: FusionConfig, p: str) -> None:
    for name in ("d_model", "num_layers", "num_heads", "mlp_dim", "spectrum_patch",
                 "climate_layers", "climate_stem_channels", "network_layers",
                 "network_latent_dim", "text_layers"):
        _positive(f"{p}{name}", getattr(f, name))
    if len(f.climate_patch) != 3 or any(not isinstance(n, int) or n < 1
                                        for n in f.climate_patch):
        raise ConfigError(f"{p}climate_patch", f"expected 3 sizes >= 1 (time, lat, lon), got "
                                               f"{f.climate_patch!r}")
    _positive(f"{p}spectrum_layers", f.spectrum_layers, allow_zero=True)
    _positive(f"{p}spectrum_bins", f.spectrum_bins, allow_zero=True)
    if f.d_model % f.num_heads:
        raise ConfigError(f"{p}num_heads", f"{f.num_heads} must divide {p}d_model={f.d_model}")
    _one_of(f"{p}attention_impl", f.attention_impl, ATTENTION_IMPLS)
    _one_of(f"{p}dtype", f.dtype, DTYPES)
    _one_of(f"{p}param_dtype", f.param_dtype, DTYPES)
    _one_of(f"{p}loss_weighting", f.loss_weighting, LOSS_WEIGHTINGS)
    _positive(f"{p}contrastive_weight", f.contrastive_weight, allow_zero=True)
    _positive(f"{p}contrastive_dim", f.contrastive_dim)
    _positive(f"{p}contrastive_temperature", f.contrastive_temperature)
    if not 0.0 <= f.modality_dropout < 1.0:
        raise ConfigError(f"{p}modality_dropout", f"must be in [0, 1), got {f.modality_dropout}")
    if not f.classes and not f.retrieval_targets:
        raise ConfigError(f"{p}classes", "the model needs at least one label to predict "
                                         "(classes or retrieval_targets)")
    for i, entry in enumerate(f.classes):
        if len(entry) != 2 or not isinstance(entry[1], int) or entry[1] < 2:
            raise ConfigError(f"{p}classes[{i}]", f"expected (label, number of classes >= 2), "
                                                  f"got {entry!r}")
    known = {name for name, _ in f.classes} | set(f.retrieval_targets)
    for i, entry in enumerate(f.loss_weights):
        if len(entry) != 2 or entry[0] not in known or not entry[1] >= 0:
            raise ConfigError(f"{p}loss_weights[{i}]", f"expected (one of {sorted(known)}, "
                                                       f"weight >= 0), got {entry!r}")


def _check_fusion_data(cfg: Config, d: FusionDataConfig, p: str) -> None:
    _check_loader(d, p)
    if not d.modalities or len(set(d.modalities)) != len(d.modalities):
        raise ConfigError(f"{p}modalities", f"expected distinct names of {FUSION_MODALITIES}, "
                                            f"got {d.modalities!r}")
    for name in d.modalities:
        _one_of(f"{p}modalities", name, FUSION_MODALITIES)
    for name in ("spectrum", "climate", "network", "text"):
        rate = getattr(d, f"{name}_rate")
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"{p}{name}_rate", f"must be in [0, 1], got {rate}")
        if name in d.modalities and rate == 0:
            raise ConfigError(f"{p}{name}_rate", f"is 0, so no planet has the {name} that "
                                                 f"{p}modalities lists; drop it from there")
    if len(d.climate_grid) != 4 or any(not isinstance(n, int) or n < 1 for n in d.climate_grid):
        raise ConfigError(f"{p}climate_grid", f"expected 4 sizes >= 1 (time, levels, lat, lon), "
                                              f"got {d.climate_grid!r}")
    _positive(f"{p}group_size", d.group_size)
    _positive(f"{p}text_length", d.text_length)
    if not 0.0 <= d.label_fraction <= 1.0:
        raise ConfigError(f"{p}label_fraction", f"must be in [0, 1], got {d.label_fraction}")
    if d.label_fraction == 0 and not cfg.model.contrastive_weight > 0:
        raise ConfigError(f"{p}label_fraction", "is 0 and config.model.contrastive_weight is 0: "
                                                "nothing to learn from; pretrain with a "
                                                "contrastive_weight > 0")
    if cfg.train.global_batch_size % d.group_size:
        raise ConfigError(f"{p}group_size", f"{d.group_size} must divide "
                                            f"config.train.global_batch_size="
                                            f"{cfg.train.global_batch_size}")
    _positive(f"{p}n_transits", d.n_transits)


def _fusion_view(cfg: Config) -> Config:
    """A describe config's fusion model and inputs as a fusion config (what its checks read)."""
    fields = {f.name: getattr(cfg.data, f.name) for f in dataclasses.fields(FusionDataConfig)}
    return Config(task="fusion", model=cfg.model.fusion, data=FusionDataConfig(**fields),
                  planets=cfg.planets, optim=cfg.optim, train=cfg.train, mesh=cfg.mesh)


def _check_describe(cfg: Config, m: DescribeConfig, p: str) -> None:
    _positive(f"{p}prefix_tokens", m.prefix_tokens, allow_zero=True)
    _positive(f"{p}projector_dim", m.projector_dim)
    if m.prefix_tokens and not m.fusion_init and not m.train_fusion:
        raise ConfigError(f"{p}fusion_init", "is empty and model.train_fusion is False: the "
                                             "prefix would come from a frozen, untrained fusion "
                                             "model; name a fusion run's workdir or set "
                                             "model.train_fusion=True")
    if not m.fusion_init:
        _check_fusion(_fusion_view(cfg), m.fusion, f"{p}fusion.")
    if not m.lm_init:
        _check_transformer(cfg, m.lm, f"{p}lm.")
        if m.lm.vocab_size < TEXT_VOCAB_SIZE:
            raise ConfigError(f"{p}lm.vocab_size",
                              f"{m.lm.vocab_size} is smaller than the byte tokenizer's "
                              f"{TEXT_VOCAB_SIZE} ids (out-of-range ids would embed as NaN)")


def _check_describe_data(cfg: Config, d: DescribeDataConfig, p: str) -> None:
    _check_fusion_data(_fusion_view(cfg), d, p)
    if d.description_length < 2:
        raise ConfigError(f"{p}description_length", f"must hold at least BOS and EOS, got "
                                                    f"{d.description_length}")


_SECTION_CHECKS = {
    TransformerConfig: _check_transformer, GraphVAEConfig: _check_graph_vae,
    DatacubeConfig: _check_datacube, PlanetsConfig: _check_planets,
    TextDataConfig: _check_text_data, GraphDataConfig: _check_graph_data,
    LinkPredDataConfig: _check_linkpred_data, CubeDataConfig: _check_cube_data,
    OptimConfig: _check_optim, TrainConfig: _check_train,
    FusionConfig: _check_fusion, FusionDataConfig: _check_fusion_data,
    LoRAConfig: _check_lora,
    DescribeConfig: _check_describe, DescribeDataConfig: _check_describe_data,
}
