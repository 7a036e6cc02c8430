"""``python -m astrojax.train --config configs/NAME.py --workdir DIR [--config.a.b=value ...]``.

Parses flags, validates the config, runs the train loop. A bad config is one line on stderr
naming the key and exit code 2.
"""

import dataclasses
import logging
import re
import sys
import typing

from absl import app, flags
from ml_collections import config_flags

from astrojax.config import Config, ConfigError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file in configs/.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and logs.")

_OVERRIDE = re.compile(r"^--config\.([\w.]+)(=.*)?$")


def _fail(message: str) -> typing.NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _check_override_key(path: str) -> None:
    """Names an unknown ``--config.a.b`` key and the keys allowed at that level."""
    cls: typing.Any = Config
    walked = []
    for part in path.split("."):
        if not dataclasses.is_dataclass(cls):
            _fail(f"config.{'.'.join(walked)} is a value, not a section; cannot set "
                  f"config.{path}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            where = f"config.{'.'.join(walked)}" if walked else "config"
            _fail(f"config.{path}: unknown key {part!r} in {where}; allowed: "
                  f"{', '.join(fields)}")
        cls = typing.get_type_hints(cls)[part]
        walked.append(part)


def parse_absl_flags(argv: list[str]) -> list[str]:
    """absl flag parsing (``--config.x.y=v`` overrides included) with one-line errors (exit
    code 2) instead of tracebacks; returns the arguments that are not flags. Shared by the
    train and data CLIs."""
    for arg in argv[1:]:
        match = _OVERRIDE.match(arg)
        if match:
            _check_override_key(match.group(1))
    try:
        return FLAGS(argv)
    except flags.Error as err:
        match = re.search(r"--config\.([\w.]+)=(.*?): (.*)", str(err))
        if match:
            _fail(f"config.{match.group(1)}: cannot use {match.group(2)!r}: {match.group(3)}")
        _fail(str(err).splitlines()[0])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        _fail(f"cannot apply config overrides: {err}")


def parse_flags(argv: list[str]) -> list[str]:
    """The train CLI's flags: ``--config`` and ``--workdir`` are required."""
    rest = parse_absl_flags(argv)
    if FLAGS.config is None:
        _fail("--config is required, e.g. --config configs/quickstart.py")
    if FLAGS.workdir is None:
        _fail("--workdir is required, e.g. --workdir runs/quickstart")
    return rest


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S", force=True)
    for noisy in ("absl", "orbax", "jax._src", "grain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def loaded_config() -> Config:
    """The ``--config`` file's Config, or a one-line error if it failed to load."""
    cfg = FLAGS.config
    if not isinstance(cfg, Config):
        load_error = getattr(cfg, "__dict__", {}).get("_error")
        if load_error is not None:  # ml_collections defers a failed config-file load
            _fail(f"cannot load config file {FLAGS['config'].config_filename}: "
                  f"{str(load_error).strip().splitlines()[-1].strip()}")
        _fail(f"{FLAGS['config'].config_filename}: get_config() must return astrojax.config."
              f"Config, got {type(cfg).__name__}")
    return cfg


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    _setup_logging()
    cfg = loaded_config()

    import jax  # after flag parsing: a bad flag should not wait for JAX to start

    from astrojax.config import validate
    from astrojax.tasks import get_task
    from astrojax.train.loop import train_and_evaluate

    if cfg.train.distributed:
        jax.distributed.initialize()
    try:
        validate(cfg, num_devices=jax.device_count())
        get_task(cfg)
    except ConfigError as err:
        _fail(str(err))
    result = train_and_evaluate(cfg, FLAGS.workdir)
    if result.stopped_by:
        sys.exit(128 + {"SIGINT": 2, "SIGTERM": 15}.get(result.stopped_by, 0))


def run() -> None:
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
