"""Config: dataclass round trips, validation messages, and the CLI's one-line errors."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from astrojax import config as config_lib
from astrojax.config import Config, ConfigError, validate

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, devices: int = 8, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "astrojax.train", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_default_config_is_valid():
    validate(Config(), num_devices=8)


@pytest.mark.parametrize("task", config_lib.TASK_NAMES)
def test_dict_round_trip(task):
    cfg = Config(task=task)
    cfg.train.steps = 7
    assert config_lib.from_dict(Config, config_lib.to_dict(cfg)) == cfg


def test_a_config_holds_its_tasks_sections_only():
    for task, sections in config_lib.TASK_SECTIONS.items():
        cfg = Config(task=task)
        assert type(cfg.model) is sections.model and type(cfg.data) is sections.data
        assert (cfg.planets is not None) == sections.planets
    assert not hasattr(Config(), "graph_vae") and not hasattr(Config(), "datacube")
    assert config_lib.to_dict(Config(task="graph_linkpred"))["planets"] is None


def test_sections_of_another_task_are_refused():
    cfg = Config(task="lm")
    cfg.task = "datacube"  # the sections are still the language model's
    with pytest.raises(ConfigError, match=r"config.model: task 'datacube' takes a "
                                          r"DatacubeConfig, got TransformerConfig"):
        validate(cfg)
    cfg = Config(task="graph_linkpred", planets=config_lib.PlanetsConfig())
    with pytest.raises(ConfigError, match=r"config.planets: task 'graph_linkpred' does not read"):
        validate(cfg)


def test_from_dict_builds_the_tasks_sections():
    cfg = config_lib.from_dict(Config, {"task": "datacube", "model": {"d_model": 64},
                                        "data": {"cube_lat": 8}})
    assert isinstance(cfg.model, config_lib.DatacubeConfig) and cfg.model.d_model == 64
    assert cfg.data.cube_lat == 8 and cfg.planets == config_lib.PlanetsConfig()
    with pytest.raises(ConfigError, match=r"config.model.seq_len: unknown key"):
        config_lib.from_dict(Config, {"task": "lm", "model": {"seq_len": 64}})


def test_from_dict_names_unknown_key():
    with pytest.raises(ConfigError, match=r"config\.train\.stepz: unknown key"):
        config_lib.from_dict(Config, {"train": {"stepz": 1}})


@pytest.mark.parametrize(
    "section, field, value, key, text",
    [
        ("train", "steps", "10", "train.steps", "expected int"),
        ("train", "steps", 0, "train.steps", "> 0"),
        ("model", "num_kv_heads", 3, "model.num_kv_heads", "must divide"),
        ("model", "dtype", "float64", "model.dtype", "float32, bfloat16"),
        ("model", "remat_policy", "some", "model.remat_policy", "dots_saveable"),
        ("data", "packing", "zip", "data.packing", "pack, pad"),
        ("data", "seq_len", 1024, "data.seq_len", "max_seq_len"),
        ("model", "vocab_size", 64, "model.vocab_size", "byte tokenizer's 259 ids"),
        ("optim", "b2", 1.0, "optim.b2", "[0, 1)"),
        ("mesh", "tensor", 0, "mesh.tensor", "positive"),
        ("planets", "val_fraction", 0.0, "planets.val_fraction", "(0, 1)"),
        ("planets", "test_fraction", 0.95, "planets.test_fraction", "leaves no planet"),
        ("planets", "num_planets", 0, "planets.num_planets", "> 0"),
    ],
)
def test_validate_names_key(section, field, value, key, text):
    cfg = Config()
    setattr(getattr(cfg, section), field, value)
    with pytest.raises(ConfigError) as err:
        validate(cfg, num_devices=8)
    assert err.value.key == key
    assert text in str(err.value)


def test_mesh_fill_and_fit():
    mesh = config_lib.MeshConfig(data=-1, fsdp=2, tensor=2)
    expected = {"data": 2, "fsdp": 2, "context": 1, "tensor": 2}
    assert config_lib.resolve_mesh_shape(mesh, 8) == expected
    with pytest.raises(ConfigError, match="needs 12 devices"):
        config_lib.resolve_mesh_shape(config_lib.MeshConfig(data=3, fsdp=2, tensor=2), 8)
    with pytest.raises(ConfigError, match="only one mesh axis"):
        config_lib.resolve_mesh_shape(config_lib.MeshConfig(data=-1, fsdp=-1), 8)


def test_batch_must_divide_data_parallel_size():
    cfg = Config()
    cfg.train.global_batch_size = 12
    with pytest.raises(ConfigError) as err:
        validate(cfg, num_devices=8)
    assert err.value.key == "train.global_batch_size"


@pytest.mark.parametrize("task, key", [("lm", "model.num_kv_heads"),
                                       ("datacube", "model.num_heads")])
def test_model_dims_must_divide_their_mesh_axes_as_the_model_says(task, key, monkeypatch):
    """The task asks the model's abstract parameters, not a list kept in config.py."""
    from astrojax.tasks import get_task

    cfg = dataclasses.replace(Config(task=task),
                              mesh=config_lib.MeshConfig(data=1, fsdp=1, tensor=8))
    validate(cfg, num_devices=8)  # nothing in config.py knows the parameters' axes
    task_obj = get_task(cfg)
    if task == "datacube":  # no store needed: the model's inputs are fixed here
        from astrojax.models.datacube_vit import DatacubeViT

        monkeypatch.setattr(type(task_obj), "build_model", lambda self, rngs: DatacubeViT(
            cfg.model, in_channels=20, grid=(8, 16, 32), num_targets=2, rngs=rngs))
    with pytest.raises(ConfigError) as err:
        task_obj.check_mesh(config_lib.resolve_mesh_shape(cfg.mesh, 8))
    assert err.value.key == key
    assert "mesh.tensor=8" in str(err.value) and "parameter" in str(err.value)


# ---- the CLI, in subprocesses ----------------------------------------------------------------

QUICK = ("--config", "configs/quickstart.py", "--workdir", "/tmp/astrojax-never-written")


def test_cli_unknown_key():
    proc = run_cli(*QUICK, "--config.train.stepz=3")
    assert_one_line_error(proc, "config.train.stepz", "unknown key", "steps")


def test_cli_unknown_section():
    proc = run_cli(*QUICK, "--config.trian.steps=3")
    assert_one_line_error(proc, "config.trian.steps", "allowed", "train")


def test_cli_wrong_type():
    proc = run_cli(*QUICK, "--config.train.steps=many")
    assert_one_line_error(proc, "config.train.steps", "'many'")


def test_cli_bad_choice():
    proc = run_cli(*QUICK, "--config.model.dtype=float64")
    assert_one_line_error(proc, "config.model.dtype", "bfloat16")


def test_cli_mesh_does_not_fit_devices():
    proc = run_cli(*QUICK, "--config.mesh.data=2", "--config.mesh.tensor=2", devices=1)
    assert_one_line_error(proc, "config.mesh", "needs 4 devices", "1 are available")


def test_cli_batch_not_divisible_by_data_parallel_size():
    proc = run_cli(*QUICK, "--config.train.global_batch_size=12", devices=8)
    assert_one_line_error(proc, "config.train.global_batch_size", "data-parallel size 8")


def test_cli_missing_config_file():
    proc = run_cli("--config", "configs/does_not_exist.py", "--workdir", "/tmp/x")
    assert_one_line_error(proc, "configs/does_not_exist.py")


def test_cli_unknown_task():
    proc = run_cli(*QUICK, "--config.task=chess")
    assert_one_line_error(proc, "config.task", "lm")


def test_task_names_match_the_registry():
    from astrojax.config import TASK_NAMES
    from astrojax.tasks import TASKS

    assert set(TASK_NAMES) == set(TASKS)


def test_context_axis_needs_a_task_and_impl_that_split_sequences():
    cfg = Config()
    cfg.mesh.context = 4
    validate(cfg, num_devices=8)  # lm, attention auto -> ring
    cfg.model.attention_impl = "pallas"
    with pytest.raises(ConfigError, match=r"config.model.attention_impl: 'pallas' cannot run.*"
                                          r"auto, ring, xla, blockwise"):
        validate(cfg, num_devices=8)
    cfg.model.attention_impl, cfg.data.seq_len = "ring", 100
    with pytest.raises(ConfigError, match=r"config.data.seq_len: 100 does not split into 8"):
        validate(cfg, num_devices=8)
    cfg = Config(task="datacube")
    cfg.mesh.context = 2
    with pytest.raises(ConfigError, match=r"config.mesh.context: 2 .*task 'datacube'"):
        validate(cfg, num_devices=8)


def test_text_vocab_size_matches_the_tokenizer():
    from astrojax.config import TEXT_VOCAB_SIZE
    from astrojax.data.tokenizer import ByteTokenizer

    assert ByteTokenizer.vocab_size == TEXT_VOCAB_SIZE


def test_graph_config_errors_name_the_key():
    cfg = Config(task="graph_vae")
    cfg.model.edge_decoder = "dot"
    with pytest.raises(ConfigError, match=r"config.model.edge_decoder: 'dot' is not one of "
                                          r"inner_product, mlp"):
        validate(cfg)
    cfg = Config(task="graph_vae")
    cfg.data.graph_buckets = ((64,),)
    with pytest.raises(ConfigError, match=r"config.data.graph_buckets\[0\]"):
        validate(cfg)
    cfg = Config(task="graph_vae")
    cfg.train.global_batch_size, cfg.data.graphs_per_sub_batch = 8, 4
    with pytest.raises(ConfigError, match=r"config.data.graphs_per_sub_batch: 2 sub-batches.*"
                                          r"data-parallel size 8"):
        validate(cfg, num_devices=8)
    cfg.train.global_batch_size = 6
    with pytest.raises(ConfigError, match=r"config.train.global_batch_size: 6 graphs"):
        validate(cfg)


def test_cli_help_exits_0_and_lists_the_config_sections():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert "--workdir" in proc.stdout and "--config.SECTION.FIELD=VALUE" in proc.stdout
    assert "optim: learning_rate" in proc.stdout
    assert "datacube: model (DatacubeConfig): patch_size" in proc.stdout
    assert "planets: num_planets" in proc.stdout


def test_cli_override_of_another_tasks_field_names_the_section_type():
    proc = run_cli(*QUICK, "--config.model.hidden_dim=32")
    assert_one_line_error(proc, "config.model.hidden_dim", "TransformerConfig", "task 'lm'",
                          "d_model")


def test_cli_overrides_reach_the_tasks_sections(tmp_path):
    proc = run_cli("--config", "configs/datacube_vit.py", "--workdir", str(tmp_path / "w"),
                   "--config.model.num_heads=5", devices=1)
    assert_one_line_error(proc, "config.model.num_heads", "must divide", "d_model=96")
