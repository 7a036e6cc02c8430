"""Fault injection: NaN and Inf, damaged and unwritable checkpoints, changed configs, signals,
a second run on one workdir, and the one-line errors users get for each."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from astrojax.config import (
    Config,
    ConfigError,
    DataConfig,
    TrainConfig,
    TransformerConfig,
    validate,
)
from astrojax.tasks.lm import LanguageModelTask
from astrojax.train.loop import TrainingError, train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**train) -> Config:
    model = TransformerConfig(d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                              head_dim=8, mlp_dim=64, max_seq_len=64)
    data = DataConfig(num_planets=128, seq_len=64)
    defaults = dict(steps=12, global_batch_size=4, log_every=1, eval_every=100, eval_batches=0,
                    checkpoint_every=2, async_checkpointing=False)
    defaults.update(train)
    return Config(model=model, data=data, train=TrainConfig(**defaults))


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
    cfg = Config()
    cfg.graph_vae.beta = value
    with pytest.raises(ConfigError, match="graph_vae.beta: must be a finite number"):
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
