"""The data CLI: build the built-in population's cube store, or ingest netCDF climate output.

    python -m astrojax.data build-cubes --config configs/NAME.py [--config.data.x=...] \\
        [--store PATH]
    python -m astrojax.data ingest-netcdf FILE... --store PATH [--variables a,b] \\
        [--time-steps N]

Both show a progress bar, resume an interrupted run when rerun, and end with a one-line
summary. Bad input is one line on stderr (``error: ...``) and exit code 2.
"""

import re
import sys
import time

from absl import app, flags

from astrojax.config import Config, ConfigError, validate

# The train CLI owns --config (ml_collections config_flags, dataclass overrides) and the
# one-line error helpers; importing it defines the flag once for both CLIs.
from astrojax.train.__main__ import _OVERRIDE, FLAGS, _check_override_key, _fail

flags.DEFINE_string("store", None, "Cube store: a path or TensorStore kvstore URL.")
flags.DEFINE_list("variables", None, "ingest-netcdf: comma-separated variables (default: all "
                                     "gridded data variables).")
flags.DEFINE_integer("time_steps", None, "ingest-netcdf: time steps per sample (default: the "
                                         "whole time axis of a file).", lower_bound=1)

COMMANDS = ("build-cubes", "ingest-netcdf")
_CUBE_FIELDS = ("num_planets", "cube_time_steps", "cube_levels", "cube_lat", "cube_lon")


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing with one-line errors; returns [program, command, arguments...]."""
    for arg in argv[1:]:
        match = _OVERRIDE.match(arg)
        if match:
            _check_override_key(match.group(1))
    argv = [a.replace("--time-steps", "--time_steps", 1) if a.startswith("--time-steps")
            else a for a in argv]
    try:
        rest = FLAGS(argv)
    except flags.Error as err:
        match = re.search(r"--config\.([\w.]+)=(.*?): (.*)", str(err))
        if match:
            _fail(f"config.{match.group(1)}: cannot use {match.group(2)!r}: {match.group(3)}")
        _fail(str(err).splitlines()[0])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        _fail(f"cannot apply config overrides: {err}")
    if len(rest) < 2 or rest[1] not in COMMANDS:
        given = f"unknown command {rest[1]!r}" if len(rest) > 1 else "no command given"
        _fail(f"{given}; expected one of: {', '.join(COMMANDS)}")
    return rest


def _loaded_config() -> Config:
    cfg = FLAGS.config
    if not isinstance(cfg, Config):
        load_error = getattr(cfg, "__dict__", {}).get("_error")
        if load_error is not None:  # ml_collections defers a failed config-file load
            _fail(f"cannot load config file {FLAGS['config'].config_filename}: "
                  f"{str(load_error).strip().splitlines()[-1].strip()}")
        _fail(f"{FLAGS['config'].config_filename}: get_config() must return astrojax.config."
              f"Config, got {type(cfg).__name__}")
    try:
        validate(cfg)
    except ConfigError as err:
        _fail(str(err))
    for name in _CUBE_FIELDS:
        if getattr(cfg.data, name) < 1:
            _fail(f"config.data.{name}: must be > 0, got {getattr(cfg.data, name)}")
    return cfg


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def build_cubes(args: list[str]) -> str:
    from astrojax.data.store import StoreError, build_synthetic_store, default_cube_store

    if args:
        _fail(f"build-cubes takes no arguments, got {' '.join(args)}")
    if FLAGS.config is None:
        _fail("build-cubes needs --config, e.g. --config configs/quickstart.py")
    if FLAGS.variables is not None or FLAGS.time_steps is not None:
        _fail("--variables and --time-steps belong to ingest-netcdf; build-cubes takes the "
              "grid from config.data.cube_*")
    data = _loaded_config().data
    url = FLAGS.store or data.cube_store or default_cube_store(data)
    start = time.perf_counter()
    try:
        store = build_synthetic_store(data, url, progress=True)
    except StoreError as err:
        _fail(_one_line(err))
    schema = store.schema
    return (f"{store.url}: {store.num_samples} planets x {len(schema.variables)} variables x "
            f"{'x'.join(map(str, schema.shape))} (time x level x lat x lon), "
            f"{len(schema.label_names)} labels, statistics saved "
            f"({time.perf_counter() - start:.1f} s)")


def ingest(args: list[str]) -> str:
    from astrojax.data.netcdf import ingest_netcdf
    from astrojax.data.store import StoreError, compute_stats

    if not args:
        _fail("ingest-netcdf needs at least one netCDF file")
    if FLAGS.store is None:
        _fail("ingest-netcdf needs --store PATH (a path or TensorStore kvstore URL)")
    if FLAGS.config is not None:
        _fail("ingest-netcdf takes no --config")
    start = time.perf_counter()
    try:
        store = ingest_netcdf(args, FLAGS.store, variables=FLAGS.variables,
                              time_steps=FLAGS.time_steps, progress=True)
        stats = "statistics already saved"
        if store.stats is None:
            try:
                store.set_stats(compute_stats(store, progress=True))
                stats = "statistics saved"
            except StoreError as err:  # missing values: the store is fine, its stats are not
                print(f"warning: {_one_line(err)}", file=sys.stderr)
                stats = "no statistics (NaN or Inf in the data, see the warning)"
    except StoreError as err:
        _fail(_one_line(err))
    schema = store.schema
    return (f"{store.url}: {store.num_samples} samples from {len(args)} file(s) x "
            f"{', '.join(schema.variables)} x {'x'.join(map(str, schema.shape))} "
            f"(time x level x lat x lon), {stats} ({time.perf_counter() - start:.1f} s)")


def main(argv: list[str]) -> None:
    command, args = argv[1], argv[2:]
    summary = build_cubes(args) if command == "build-cubes" else ingest(args)
    print(summary)


def run() -> None:
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
