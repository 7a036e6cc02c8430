"""Several processes: the launch fields' checks, the one-line failures, and a real run of 2
processes with 4 CPU devices each on 127.0.0.1 against 1 process with 8 devices: the same
losses, each process feeding its own rows of the same global batches, and checkpoints that
resume in either layout (2 x 4 -> 1 x 8 and 1 x 8 -> 2 x 4) with the same numbers."""

import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_train import params_of, read_metrics, tiny_config

from astrojax import sharding
from astrojax.config import ConfigError, MeshConfig, validate
from astrojax.train import distributed, step
from astrojax.train.checkpoint import Checkpointer
from astrojax.train.loop import train_and_evaluate
from astrojax.train.workdir import WorkdirError

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("loss", "grad_norm", "learning_rate", "eval/loss")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("fields, key", [
    (dict(coordinator_address="127.0.0.1:1234"), "train.num_processes"),
    (dict(coordinator_address="127.0.0.1:1234", num_processes=2), "train.process_id"),
    (dict(num_processes=2, process_id=0), "train.coordinator_address"),
    (dict(coordinator_address="127.0.0.1", num_processes=2, process_id=0),
     "train.coordinator_address"),
    (dict(coordinator_address="host:99999", num_processes=2, process_id=0),
     "train.coordinator_address"),
    (dict(coordinator_address="127.0.0.1:1234", num_processes=2, process_id=2),
     "train.process_id"),
    (dict(coordinator_address="127.0.0.1:1234", num_processes=0, process_id=0),
     "train.num_processes"),
    (dict(coordinator_address="127.0.0.1:1234", num_processes=2, process_id=0,
          distributed=False), "train.coordinator_address"),
])
def test_partial_or_bad_launch_fields_name_the_key(fields, key):
    cfg = tiny_config(**{"distributed": True, **fields})
    with pytest.raises(ConfigError, match=rf"^config\.{key}: "):
        validate(cfg)
    with pytest.raises(ConfigError, match=rf"^config\.{key}: "):
        distributed.initialize(cfg)


def test_launch_fields_all_set_or_none_are_valid():
    validate(tiny_config(distributed=True))
    validate(tiny_config(distributed=True, coordinator_address="[::1]:1234", num_processes=4,
                         process_id=3))
    assert not distributed.initialize(tiny_config())  # not distributed: nothing to join


def test_an_unreachable_coordinator_is_one_line_naming_it():
    address = f"127.0.0.1:{free_port()}"  # nobody listens there
    cfg = tiny_config(distributed=True, coordinator_address=address, num_processes=2,
                      process_id=1)
    with pytest.raises(distributed.DistributedError,
                       match=rf"cannot reach the coordinator at {address} .*every process "
                             "must be started"):
        distributed.initialize(cfg, timeout_s=1)


def test_a_data_position_carries_to_another_process_count_only_when_all_agree(tmp_path):
    checkpointer = Checkpointer(tmp_path / "checkpoints", max_to_keep=2, async_save=False)
    try:
        data = tmp_path / "checkpoints" / "4" / "data"
        data.mkdir(parents=True)
        for index, position in enumerate((3, 3)):
            (data / f"process_{index}-of-2.json").write_text(json.dumps({"next_index": position}))
        assert checkpointer._data_state_of_another_layout(4) == {"next_index": 3}
        (data / "process_1-of-2.json").write_text(json.dumps({"next_index": 5}))
        with pytest.raises(WorkdirError, match="written by 2 processes whose data positions "
                                               "differ.*resume it on 2 processes"):
            checkpointer._data_state_of_another_layout(4)
        (data / "process_0-of-1.json").write_text("{}")  # this layout's own file: Grain reads it
        assert checkpointer._data_state_of_another_layout(4) is None
    finally:
        checkpointer.close()


@pytest.mark.parametrize("slices, expected", [
    # 2 processes x 4 devices, (data=8): each holds its own half
    ({0: {(0, 1), (1, 2), (2, 3), (3, 4)}, 1: {(4, 5), (5, 6), (6, 7), (7, 8)}},
     {0: (0, 2), 1: (1, 2)}),
    # 4 processes x 1 GPU, (fsdp=2, tensor=2): tensor peers hold, so feed, the same rows
    ({0: {(0, 4)}, 1: {(0, 4)}, 2: {(4, 8)}, 3: {(4, 8)}},
     {0: (0, 2), 1: (0, 2), 2: (1, 2), 3: (1, 2)}),
    # (context=8) over 2 processes: the batch is not split; both feed all of it
    ({0: {(0, 8)}, 1: {(0, 8)}}, {0: (0, 1), 1: (0, 1)}),
])
def test_each_process_feeds_the_block_of_rows_its_devices_hold(slices, expected):
    assert sharding.row_blocks(slices, 8) == expected


def test_rows_that_are_not_one_block_per_process_are_refused():
    with pytest.raises(ConfigError, match=r"^config\.mesh: .*not equal contiguous blocks"):
        sharding.row_blocks({0: {(0, 2), (4, 6)}, 1: {(2, 4), (6, 8)}}, 8)
    with pytest.raises(ConfigError, match=r"^config\.mesh: "):
        sharding.row_blocks({0: {(0, 2)}, 1: {(2, 8)}}, 8)


@pytest.mark.parametrize("mesh", [MeshConfig(data=8), MeshConfig(data=1, fsdp=4, tensor=2),
                                  MeshConfig(data=1, context=8)])
def test_one_process_feeds_whole_batches(mesh):
    assert sharding.process_data_block(sharding.make_mesh(mesh), mesh.logical_axis_rules,
                                       16) == (0, 1)


@pytest.mark.slow
def test_worker_processes_do_not_join_again():
    # Grain's worker processes are children of the trainer: they must not connect (as a
    # second process 1, say) to the coordinator their parent has joined.
    cfg = tiny_config(distributed=True, coordinator_address=f"127.0.0.1:{free_port()}",
                      num_processes=2, process_id=1)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(distributed.initialize, (cfg,), {"timeout_s": 1}) is False


def clean_env(devices: int) -> dict[str, str]:
    """This environment without any cluster's variables, with ``devices`` CPU devices."""
    cluster = ("SLURM_", "OMPI_", "PMI_", "KUBERNETES_", "TPU_", "CLOUD_TPU", "JAX_COORDINATOR",
               "JAX_PROCESS", "JAX_NUM_PROCESSES", "JAX_LOCAL_DEVICE_IDS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(cluster)}
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    return env


def one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.slow
def test_distributed_without_a_cluster_environment_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "astrojax.train", "--config", str(write_config(tmp_path)),
         "--workdir", str(tmp_path / "run"), "--config.train.distributed=True"],
        cwd=ROOT, env=clean_env(4), capture_output=True, text=True, timeout=120)
    one_error_line(proc, "detected no cluster environment", "train.coordinator_address")
    assert not (tmp_path / "run").exists()


# ---- 2 processes x 4 devices against 1 process x 8 -------------------------------------------

CONFIG = """
import sys
sys.path.insert(0, {tests!r})
from test_distributed import one_process_config


def get_config():
    return one_process_config()
"""

# `launch.py OUT SIGTERM_AT ARGS...` runs the train CLI, keeping the tokens of every batch this
# process fed (train and eval, in order) in OUT: what each process reads, seen where it enters
# the mesh. With SIGTERM_AT > 0 the process sends itself SIGTERM as it feeds that batch.
LAUNCHER = """
import atexit, os, signal, sys
import numpy as np
from astrojax.train import step
out, sigterm_at, fed = sys.argv.pop(1), int(sys.argv.pop(1)), []
shard = step.Program.shard

def feed(self, batch):
    fed.append(batch["tokens"])
    if len(fed) == sigterm_at:
        os.kill(os.getpid(), signal.SIGTERM)
    return shard(self, batch)

step.Program.shard = feed
atexit.register(lambda: np.save(out, np.stack(fed)))
from astrojax.train.__main__ import run
run()
"""


def one_process_config(steps: int = 12):
    cfg = tiny_config(steps=steps, checkpoint_every=4)
    cfg.optim.decay_steps = 12  # the schedule of the 12-step run, also in shorter ones
    return cfg


def write_config(folder: Path) -> Path:
    path = folder / "tiny_distributed.py"
    path.write_text(CONFIG.format(tests=str(ROOT / "tests")))
    return path


def run_two_processes(folder: Path, workdir: Path, steps: int, sigterm_at: tuple[int, int],
                      exit_code: int = 0, extra: tuple[str, ...] = ()) -> list[np.ndarray]:
    """Trains ``workdir`` to ``steps`` with 2 processes of 4 CPU devices each, process ``i``
    sending itself SIGTERM at its ``sigterm_at[i]``-th batch (0: never); returns the tokens
    each process fed."""
    launcher = folder / "launch.py"
    launcher.write_text(LAUNCHER)
    address = f"127.0.0.1:{free_port()}"
    # Without the persistent compilation cache: JAX writes it from process 0 only, and a hit
    # there beside a miss here puts the processes more than 30 s apart at their first
    # collective, past the fixed timeout of Gloo's (CPU collectives') context set-up.
    env = clean_env(4) | {"JAX_ENABLE_COMPILATION_CACHE": "false"}
    procs = []
    for index in range(2):
        fed = folder / f"fed_{index}.npy"
        args = [sys.executable, str(launcher), str(fed), str(sigterm_at[index]),
                "--config", str(write_config(folder)),
                "--workdir", str(workdir), f"--config.train.steps={steps}",
                "--config.train.distributed=True",
                f"--config.train.coordinator_address={address}",
                "--config.train.num_processes=2", f"--config.train.process_id={index}", *extra]
        log = (folder / f"log_{index}.txt").open("w")
        procs.append((subprocess.Popen(args, cwd=ROOT, env=env, stdout=log,
                                       stderr=subprocess.STDOUT), fed, log))
    results = []
    for proc, fed, log in procs:
        try:
            code = proc.wait(timeout=400)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
        assert code == exit_code, Path(log.name).read_text()[-3000:]
        results.append(np.load(fed))
    return results


def records(workdir: Path, first: int, last: int) -> list[dict]:
    return [{k: r[k] for k in KEYS if k in r} | {"step": r["step"]}
            for r in read_metrics(workdir) if first <= r["step"] <= last and r.keys() & set(KEYS)]


def assert_same_numbers(ours: list[dict], theirs: list[dict]) -> None:
    assert [r["step"] for r in ours] == [r["step"] for r in theirs] and ours
    for a, b in zip(ours, theirs, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=2e-5, err_msg=f"{key} {a['step']}")


@pytest.mark.slow
def test_two_processes_match_one_and_checkpoints_resume_in_either_layout(tmp_path,
                                                                         monkeypatch):
    # 1 x 8: the uninterrupted reference, 12 steps, checkpoints at 4, 8 and 12
    fed_one = []
    shard = step.Program.shard
    monkeypatch.setattr(step.Program, "shard",
                        lambda self, batch: fed_one.append(batch["tokens"]) or shard(self, batch))
    straight = train_and_evaluate(one_process_config(), tmp_path / "straight")
    monkeypatch.undo()
    # The batches fed, in order: train 1-4, eval at 4, train 5-8, eval at 8, train 9-12, eval
    # at 12, test.
    assert len(fed_one) == 16 and fed_one[0].shape == (8, 64)

    # 1 x 8 -> 2 x 4: the reference's step-4 checkpoint, resumed by 2 processes. Only process
    # 1 gets a SIGTERM, as it feeds step 8's batch: both stop after step 8 (had process 0 gone
    # on alone, its step 9 would wait for a peer that has left), with its checkpoint.
    workdir = tmp_path / "moved"
    shutil.copytree(tmp_path / "straight", workdir)
    for later in ("8", "12"):
        shutil.rmtree(workdir / "checkpoints" / later)
    first, second = run_two_processes(tmp_path, workdir, steps=12, sigterm_at=(0, 4),
                                      exit_code=128 + 15)
    # each process fed its own half of every batch the 1-process run fed
    assert first.shape == second.shape == (5, 4, 64)  # train 5-8, eval at 8
    for a, b, whole in zip(first, second, fed_one[5:10], strict=True):
        np.testing.assert_array_equal(np.concatenate([a, b]), whole)
    assert not np.array_equal(first, second)
    # the same losses, and a checkpoint written by both
    assert_same_numbers(records(workdir, 5, 8), records(tmp_path / "straight", 5, 8))
    saved = sorted(p.name for p in (workdir / "checkpoints" / "8" / "data").glob("process_*"))
    assert saved == ["process_0-of-2.json", "process_1-of-2.json"]

    # 2 x 4 -> 1 x 8: their step-8 checkpoint, resumed by 1 process to step 12
    resumed = train_and_evaluate(one_process_config(), workdir)
    assert resumed.step == 12
    assert_same_numbers(records(workdir, 9, 12), records(tmp_path / "straight", 9, 12))
    p_straight, p_resumed = params_of(straight.state), params_of(resumed.state)
    for name in p_straight:
        np.testing.assert_allclose(p_resumed[name], p_straight[name], rtol=1e-4, atol=1e-6,
                                   err_msg=name)
