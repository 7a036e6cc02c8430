"""Typed run configuration: nested dataclasses, conversion, and start-up validation.

A config file in ``configs/`` defines ``get_config()`` returning a :class:`Config`. The CLI loads
it with ``ml_collections.config_flags`` so that any field can be overridden from the command
line (``--config.train.steps=200``); library users build the same dataclasses in Python.
:func:`validate` checks everything that can be checked before JAX does any work and raises
:class:`ConfigError` naming the offending key and what it accepts.

The sections are in :mod:`astrojax.config.sections`, conversion and validation of a task's
sections in :mod:`astrojax.config.checks`, validation of the run-level ones (optim, train, lora,
mesh) in :mod:`astrojax.config.run_checks`; everything is importable from here.
"""

from astrojax.config.checks import from_dict, to_dict, validate
from astrojax.config.run_checks import resolve_mesh_shape
from astrojax.config.sections import (
    ATTENTION_IMPLS,
    BAD_CHECKPOINT_POLICIES,
    CONTEXT_IMPLS,
    DATACUBE_OBJECTIVES,
    DEFAULT_LOGICAL_AXIS_RULES,
    DTYPES,
    EDGE_DECODERS,
    FUSION_MODALITIES,
    LORA_TARGETS,
    LOSS_WEIGHTINGS,
    MESH_AXES,
    PACKING_MODES,
    POSITION_EMBEDDINGS,
    REMAT_POLICIES,
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
    MeshConfig,
    OptimConfig,
    PlanetsConfig,
    TaskSections,
    TextDataConfig,
    TrainConfig,
    TransformerConfig,
)

__all__ = [
    "ATTENTION_IMPLS", "BAD_CHECKPOINT_POLICIES", "CONTEXT_IMPLS", "Config", "ConfigError",
    "CubeDataConfig", "DATACUBE_OBJECTIVES", "DEFAULT_LOGICAL_AXIS_RULES", "DTYPES",
    "DatacubeConfig", "DescribeConfig", "DescribeDataConfig", "EDGE_DECODERS",
    "FUSION_MODALITIES", "FusionConfig", "FusionDataConfig",
    "GraphDataConfig", "GraphVAEConfig", "LORA_TARGETS", "LOSS_WEIGHTINGS", "LinkPredDataConfig",
    "LoRAConfig", "LoaderConfig",
    "MESH_AXES",
    "MeshConfig", "OptimConfig", "PACKING_MODES", "POSITION_EMBEDDINGS", "PlanetsConfig",
    "REMAT_POLICIES", "SEQUENCE_MIXERS", "TASK_NAMES", "TASK_SECTIONS", "TEXT_CORPORA",
    "TEXT_VOCAB_SIZE",
    "TaskSections", "TextDataConfig", "TrainConfig", "TransformerConfig", "from_dict",
    "resolve_mesh_shape", "to_dict", "validate",
]
