"""``python -m astrojax.train --config configs/NAME.py --workdir DIR [--config.a.b=value ...]``.

Parses flags, validates the config, runs the train loop. A bad config is one line on stderr
naming the key and exit code 2.
"""

import logging
import sys

from absl import app, flags

from astrojax import cli
from astrojax.config import ConfigError

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and logs (a run "
                                     "resumes from the checkpoints it finds there).")
flags.DEFINE_bool("dry_run", False, "Compile the train step for the configured mesh on "
                                    "abstract shapes and print its memory per device and FLOPs "
                                    "per step; allocates no state, trains nothing, needs no "
                                    "--workdir.")
flags.DEFINE_integer("dry_run_devices", None, "With --dry_run: plan for this many devices, "
                                              "made as fake CPU devices (plan a GPU cluster's "
                                              "mesh on a laptop).")

USAGE = """usage: python -m astrojax.train --config configs/NAME.py --workdir DIR \\
           [--config.SECTION.FIELD=VALUE ...]
       python -m astrojax.train --config configs/NAME.py --dry_run [--dry_run_devices=N]

Trains config.task on the configured mesh, evaluating, logging and checkpointing into --workdir;
rerunning on the same workdir resumes. A bad config is one line naming the key (exit code 2);
SIGTERM or Ctrl-C saves a checkpoint and exits 143 or 130. --dry_run prints the memory and
FLOPs of one train step on the configured mesh without allocating or training anything.
"""


def parse_flags(argv: list[str]) -> list[str]:
    """The train CLI's flags: ``--config`` and ``--workdir`` are required."""
    if cli.wants_help(argv[1:]):
        flag_names = ("config", "workdir", "dry_run", "dry_run_devices")
        cli.print_help("\n".join([USAGE, "flags:", cli.describe_flags(flag_names),
                                   "", cli.config_sections_help()]))
    rest = cli.parse_absl_flags(argv)
    if FLAGS.config is None:
        cli.fail("--config is required, e.g. --config configs/quickstart.py")
    if FLAGS.dry_run_devices is not None and not FLAGS.dry_run:
        cli.fail("--dry_run_devices is for --dry_run")
    if FLAGS.dry_run_devices is not None and FLAGS.dry_run_devices < 1:
        cli.fail(f"--dry_run_devices must be at least 1, got {FLAGS.dry_run_devices}")
    if FLAGS.workdir is None and not FLAGS.dry_run:
        cli.fail("--workdir is required, e.g. --workdir runs/quickstart")
    return rest


def _one_line_library_errors(record: logging.LogRecord) -> bool:
    """Libraries' own error records (Orbax's background threads log each failure with its
    traceback, several times) keep their message and lose the traceback: the run reports the
    cause itself, in one line."""
    if not record.name.startswith(("astrojax", "__main__")):
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record.msg, record.args = " ".join(record.getMessage().split())[:500], ()
    return True


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S", force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_one_line_library_errors)
    for noisy in ("absl", "orbax", "jax._src", "grain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    _setup_logging()
    cfg = cli.loaded_config()

    import jax  # after flag parsing: a bad flag should not wait for JAX to start

    if FLAGS.dry_run:
        _dry_run(cfg, FLAGS.dry_run_devices)
        return

    from astrojax.config import validate
    from astrojax.data.formats.store import StoreError
    from astrojax.data.metabolic import NetworkError
    from astrojax.tasks import get_task
    from astrojax.train import distributed
    from astrojax.train.loop import TrainingError, train_and_evaluate
    from astrojax.train.workdir import WorkdirError

    try:
        distributed.initialize(cfg)
    except (ConfigError, distributed.DistributedError) as err:
        cli.fail(str(err))
    try:
        validate(cfg, num_devices=jax.device_count())
        get_task(cfg)
    except ConfigError as err:
        cli.fail(str(err))
    try:
        result = train_and_evaluate(cfg, FLAGS.workdir)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, without the last save
        print("error: interrupted by a second Ctrl-C; not saved since the last checkpoint",
              file=sys.stderr)
        sys.exit(130)
    except (WorkdirError, ConfigError, NetworkError, StoreError) as err:
        cli.fail(" ".join(str(err).split()))  # fix the command, a file or the folder; rerun
    except TrainingError as err:  # the run started and cannot go on
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    if not result.stopped_by and jax.process_count() == 1:
        _showcase(cfg, result, FLAGS.workdir)
    if result.stopped_by:
        sys.exit(128 + {"SIGINT": 2, "SIGTERM": 15}.get(result.stopped_by, 0))


def _dry_run(cfg, num_devices: int | None) -> None:
    """Prints the plan of one train step (``astrojax.train.plan``); with ``num_devices``, on
    that many fake CPU devices (set before JAX starts its backends)."""
    import jax

    if num_devices is not None:
        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_num_cpu_devices", num_devices)
    from astrojax.train.plan import format_plan, plan_run

    try:
        plan = plan_run(cfg)
    except ConfigError as err:
        cli.fail(str(err))
    print(format_plan(plan))


def _showcase(cfg, result, workdir) -> None:
    """Prints what the task shows of the trained model (``Task.showcase``; the language model
    writes a held-out planet's description) and keeps it in the workdir's showcase.txt."""
    from pathlib import Path

    import jax
    from flax import nnx

    from astrojax.tasks import get_task
    from astrojax.train.step import abstract_model

    task = get_task(cfg)
    graphdef, _ = abstract_model(task, cfg.train.seed)
    params = result.state.params if result.params is None else result.params  # best step's
    mesh = jax.tree.leaves(params)[0].sharding.mesh
    text = task.showcase(nnx.merge(graphdef, params), mesh, cfg.mesh.logical_axis_rules)
    if text:
        print(text)
        (Path(workdir) / "showcase.txt").write_text(text + "\n")


def run() -> None:
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
