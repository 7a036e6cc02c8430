"""Fault injection: NaN and Inf, damaged and unwritable checkpoints, changed configs, signals,
a second run on one workdir, and the one-line errors users get for each."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from astrojax.config import (
    Config,
    ConfigError,
    PlanetsConfig,
    TextDataConfig,
    TrainConfig,
    TransformerConfig,
    validate,
)
from astrojax.tasks.lm import LanguageModelTask
from astrojax.train import step as step_lib
from astrojax.train.checkpoint import Checkpointer
from astrojax.train.loop import TrainingError, train_and_evaluate
from astrojax.train.workdir import Lock, WorkdirError, prepare

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**train) -> Config:
    model = TransformerConfig(d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                              head_dim=8, mlp_dim=64, max_seq_len=64)
    data = TextDataConfig(seq_len=64)
    defaults = dict(steps=12, global_batch_size=4, log_every=1, eval_every=100, eval_batches=0,
                    checkpoint_every=2, async_checkpointing=False)
    defaults.update(train)
    return Config(task="lm", model=model, data=data, planets=PlanetsConfig(num_planets=128),
                  train=TrainConfig(**defaults))


def read_metrics(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
               JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "astrojax.train", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


# ---- NaN and Inf -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_config_values_are_refused(value):
    cfg = Config()
    cfg.optim.learning_rate = value
    with pytest.raises(ConfigError, match="optim.learning_rate: must be a finite number"):
        validate(cfg)
    cfg = Config(task="graph_vae")
    cfg.model.beta = value
    with pytest.raises(ConfigError, match="model.beta: must be a finite number"):
        validate(cfg)


def test_nan_learning_rate_on_the_command_line_is_one_line():
    proc = run_cli("--config", "configs/quickstart.py", "--workdir", "/tmp/astrojax-never",
                   "--config.optim.learning_rate=nan")
    one_line_error(proc, 2, "config.optim.learning_rate", "finite")


@pytest.mark.slow
def test_non_finite_steps_are_skipped_then_the_run_stops(tmp_path, monkeypatch):
    loss = LanguageModelTask.loss

    def poisoned(self, model, batch, rng, step):  # NaN from the 5th update on
        value, aux = loss(self, model, batch, rng, step)
        return jnp.where(step >= 4, jnp.nan, value), aux

    monkeypatch.setattr(LanguageModelTask, "loss", poisoned)
    cfg = tiny_config(steps=20, max_nonfinite_steps=3)
    with pytest.raises(TrainingError) as err:
        train_and_evaluate(cfg, tmp_path, devices=jax.devices()[:1])
    message = str(err.value)
    assert "3 steps in a row" in message and "last finite checkpoint is step 4" in message
    assert "\n" not in message
    rows = read_metrics(tmp_path)
    assert [r["nonfinite_in_a_row"] for r in rows] == [0, 0, 0, 0, 1, 2, 3]
    assert rows[-1]["nonfinite_steps"] == 3
    # nothing after the last finite update was saved, and what was saved is finite
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [2, 4]


# ---- signals -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_host_stays_at_most_one_step_ahead(tmp_path, monkeypatch):
    """A signal is handled between host waits; if the host ran many steps ahead of the device
    (JAX dispatches asynchronously), the save after SIGTERM would first wait for all of them
    and a short grace period could end before it."""
    build_program = step_lib.build_program
    unfinished = []

    def watched(cfg, task, mesh):
        program = build_program(cfg, task, mesh)
        outputs = []

        def train_step(state, batch):
            unfinished.append(sum(not m["loss"].is_ready() for m in outputs))
            state, metrics = program.train_step(state, batch)
            outputs.append(metrics)
            return state, metrics

        return dataclasses.replace(program, train_step=train_step)

    monkeypatch.setattr(step_lib, "build_program", watched)
    # steps long enough (~0.1-0.5 s) that an unbounded host would run ahead
    cfg = tiny_config(steps=8, log_every=1000, checkpoint_every=1000, global_batch_size=16)
    cfg.model = TransformerConfig(d_model=128, num_layers=4, mlp_dim=384, head_dim=32,
                                  max_seq_len=256)
    cfg.data.seq_len = 256
    train_and_evaluate(cfg, tmp_path, devices=jax.devices()[:1])
    assert len(unfinished) == 8 and max(unfinished) <= 1, unfinished


# ---- damaged checkpoints, changed configs, one run per workdir ---------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 4-step run with checkpoints 2 and 4 (copy it before changing it)."""
    workdir = tmp_path_factory.mktemp("trained")
    train_and_evaluate(tiny_config(steps=4), workdir, devices=jax.devices()[:1])
    return workdir


def copy_of(trained: Path, tmp_path: Path) -> Path:
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    return workdir


def damage(step_dir: Path, kind: str) -> None:
    if kind == "truncated array file":
        data = max((step_dir / "state" / "ocdbt.process_0" / "d").iterdir(),
                   key=lambda f: f.stat().st_size)
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    elif kind == "missing _METADATA":
        (step_dir / "state" / "_METADATA").unlink()
    elif kind == "truncated config":
        config = step_dir / "config" / "metadata"
        config.write_bytes(config.read_bytes()[:20])
    elif kind == "empty step folder":
        shutil.rmtree(step_dir)
        step_dir.mkdir()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["truncated array file", "missing _METADATA",
                                  "truncated config", "empty step folder"])
def test_a_damaged_newest_checkpoint_is_named_with_the_one_before(trained, tmp_path, kind):
    workdir = copy_of(trained, tmp_path)
    damage(workdir / "checkpoints" / "4", kind)
    with pytest.raises(TrainingError) as err:
        train_and_evaluate(tiny_config(steps=6), workdir, devices=jax.devices()[:1])
    message = str(err.value)
    assert "checkpoint 4" in message and "damaged" in message and "step 2" in message
    assert "on_bad_checkpoint=fallback" in message and "\n" not in message
    assert (workdir / "checkpoints" / "4").exists()  # nothing moved without being asked


@pytest.mark.slow
def test_fallback_moves_the_bad_checkpoint_aside_and_resumes_from_the_one_before(
        trained, tmp_path, caplog):
    workdir = copy_of(trained, tmp_path)
    damage(workdir / "checkpoints" / "4", "truncated array file")
    cfg = tiny_config(steps=6, on_bad_checkpoint="fallback")
    with caplog.at_level("WARNING"):
        result = train_and_evaluate(cfg, workdir, devices=jax.devices()[:1])
    assert result.step == 6
    assert "resume from" not in caplog.text and "moved it to 4.bad-" in caplog.text
    moved = [p.name for p in (workdir / "checkpoints").iterdir() if ".bad-" in p.name]
    assert len(moved) == 1 and moved[0].startswith("4.bad-")
    # the run went on from step 2: its metrics rows after 2 were rewritten by the resumed run
    assert [r["step"] for r in read_metrics(workdir)] == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_resuming_with_another_model_task_or_data_is_refused_before_anything_changes(
        trained, tmp_path):
    workdir = copy_of(trained, tmp_path)
    saved = (workdir / "config.json").read_text()
    wider = tiny_config(steps=6)
    wider.model.d_model = 48
    with pytest.raises(WorkdirError, match=r"other parameter shapes.*config.model.d_model "
                                           r"\(32 -> 48\).*new --workdir"):
        train_and_evaluate(wider, workdir, devices=jax.devices()[:1])
    other_data = tiny_config(steps=6)
    other_data.planets.num_planets = 256
    with pytest.raises(WorkdirError, match=r"other data.*config.planets.num_planets"):
        train_and_evaluate(other_data, workdir, devices=jax.devices()[:1])
    graph = Config(task="graph_vae", train=TrainConfig(steps=6, global_batch_size=4))
    with pytest.raises(WorkdirError, match=r"trained for task 'lm', not 'graph_vae'"):
        train_and_evaluate(graph, workdir, devices=jax.devices()[:1])
    assert (workdir / "config.json").read_text() == saved


def test_a_second_run_on_a_workdir_is_refused_and_a_dead_ones_lock_is_not(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from astrojax.train.workdir import Lock\n"
         f"with Lock(Path({str(tmp_path)!r})):\n    print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkdirError, match=rf"in use by another run \(pid {holder.pid} on"):
            with Lock(tmp_path):
                pass
    finally:
        holder.kill()  # as a crash would: no clean release
        holder.wait()
    with Lock(tmp_path):  # the OS released the dead process's lock
        assert (tmp_path / ".lock.owner").exists()
    assert not (tmp_path / ".lock.owner").exists()


def test_a_workdir_that_is_a_file_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "file").write_text("")
    proc = run_cli("--config", "configs/quickstart.py", "--workdir", str(tmp_path / "file"))
    one_line_error(proc, 2, "is a file")
    with pytest.raises(WorkdirError, match="checkpoints is a file"):
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "checkpoints").write_text("")
        prepare(tmp_path / "run")


@pytest.mark.slow
def test_a_failed_checkpoint_write_stops_the_run_at_once(tmp_path, monkeypatch):
    save = Checkpointer.save

    def sabotaged(self, step, *args, **kwargs):
        if step == 4:  # the folder is gone and a file sits where it was
            self.wait()  # (not while step 2's save still writes into it)
            shutil.rmtree(self.directory)
            self.directory.write_text("")
        return save(self, step, *args, **kwargs)

    monkeypatch.setattr(Checkpointer, "save", sabotaged)
    cfg = tiny_config(steps=12, async_checkpointing=True)
    start = time.perf_counter()
    with pytest.raises(TrainingError, match=r"cannot write( a)? checkpoint.*checkpoints"):
        train_and_evaluate(cfg, tmp_path, devices=jax.devices()[:1])
    assert time.perf_counter() - start < 120  # no waiting on what cannot finish
    assert read_metrics(tmp_path)[-1]["step"] <= 6  # at the first error, not at the end


# ---- one line, exit 2, for what the user must fix ---------------------------------------------

def test_a_config_file_that_raises_shows_its_message(tmp_path):
    config = tmp_path / "broken.py"
    config.write_text("def get_config():\n    raise ValueError('num_planets must be even')\n")
    proc = run_cli("--config", str(config), "--workdir", str(tmp_path / "run"))
    one_line_error(proc, 2, "broken.py", "ValueError: num_planets must be even")


@pytest.mark.slow
@pytest.mark.parametrize("overrides, needles", [
    (("--config", "configs/graph_vae_linkpred.py", "--config.data.sbml_path=BAD"),
     ("bad.xml", "Unclosed XML token")),
    (("--config", "configs/datacube_vit.py", "--config.data.cube_store=MISSING"),
     ("no cube store at", "astrojax.json is missing")),
    (("--config", "configs/quickstart.py", "--config.planets.num_planets=20"),
     ("config.planets.val_fraction", "less than one eval batch")),
])
def test_bad_input_files_and_splits_are_one_line(tmp_path, overrides, needles):
    (tmp_path / "bad.xml").write_text("<sbml")
    args = [a.replace("BAD", str(tmp_path / "bad.xml")).replace("MISSING", str(tmp_path / "no"))
            for a in overrides]
    proc = run_cli(*args, "--workdir", str(tmp_path / "run"))
    one_line_error(proc, 2, *needles)


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
               JAX_PLATFORMS="cpu")
    args = [sys.executable, "-m", "astrojax.train", "--config", "configs/quickstart.py",
            "--workdir", str(tmp_path), "--config.train.log_every=1",
            "--config.train.eval_batches=0", "--config.train.steps=100000"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        metrics = tmp_path / "metrics.jsonl"
        while time.time() < deadline and not (metrics.exists() and metrics.read_text()):
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
