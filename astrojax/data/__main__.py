"""The data CLI: build the built-in population's cube store, ingest netCDF climate output,
fetch from an archive, or join fetched archive tables into the planet catalogue.

    python -m astrojax.data build-cubes --config configs/NAME.py [--config.data.x=...] \\
        [--store PATH]
    python -m astrojax.data ingest-netcdf FILE... --store PATH [--variables a,b] \\
        [--time-steps N]
    python -m astrojax.data fetch SOURCE --out DIR [--option key=value ...] [--offline] \\
        [--cache DIR] [--base-url URL]
    python -m astrojax.data build-catalog --from DIR1,DIR2 --out DIR

build-cubes and ingest-netcdf show a progress bar and resume an interrupted run when rerun;
build-catalog shows a progress bar. Each ends with a one-line summary on stdout (fetch lists
what it skipped on stderr). Bad input is one line on stderr (``error: ...``) and exit code 2.
"""

import re
import sys
import time

from absl import app, flags

from astrojax import cli
from astrojax.cli import FLAGS, fail
from astrojax.config import Config, ConfigError, CubeDataConfig, validate

flags.DEFINE_string("store", None, "Cube store: a path or TensorStore kvstore URL.")
flags.DEFINE_list("variables", None, "ingest-netcdf: comma-separated variables (default: all "
                                     "gridded data variables).")
flags.DEFINE_integer("time_steps", None, "ingest-netcdf: time steps per sample (default: the "
                                         "whole time axis of a file).", lower_bound=1)
flags.DEFINE_string("out", None, "fetch, build-catalog: output folder.")
flags.DEFINE_multi_string("option", [], "fetch: a source option as key=value (repeatable; "
                                        "see the source's fetch docstring).")
flags.DEFINE_bool("offline", False, "fetch: serve every reply from the cache.")
flags.DEFINE_string("cache", None, "fetch: reply cache folder (default $ASTROJAX_CACHE/sources "
                                   "or ~/.cache/astrojax/sources).")
flags.DEFINE_string("base_url", None, "fetch: replaces the source's base URL (a mirror).")
flags.DEFINE_list("from", None, "build-catalog: comma-separated fetch output folders.")

COMMANDS = ("build-cubes", "ingest-netcdf", "fetch", "build-catalog")
# Flags each command accepts; any other of these given on the command line is an error.
_COMMAND_FLAGS = {
    "build-cubes": {"config", "store"},
    "ingest-netcdf": {"store", "variables", "time_steps", "config"},  # ingest names --config
    "fetch": {"out", "option", "offline", "cache", "base_url"},
    "build-catalog": {"from", "out"},
}
_HYPHENATED = {"--time-steps": "--time_steps", "--base-url": "--base_url"}
_SPELLED = {"time_steps": "time-steps", "base_url": "base-url"}
# What each command does, for --help: its usage line and one paragraph.
_COMMAND_HELP = {
    "build-cubes": ("build-cubes --config configs/NAME.py [--config.data.x=...] [--store PATH]",
                    "Builds the built-in planets' climate datacubes into a TensorStore store "
                    "(default: config.data.cube_store or the cache); resumes when rerun."),
    "ingest-netcdf": ("ingest-netcdf FILE... --store PATH [--variables a,b] [--time-steps N]",
                      "Ingests CF-convention netCDF climate-model output into a cube store."),
    "fetch": ("fetch SOURCE --out DIR [--option key=value ...] [--offline] [--cache DIR] "
              "[--base-url URL]",
              "Fetches tables and files from one archive into DIR, with provenance."),
    "build-catalog": ("build-catalog --from DIR1,DIR2 --out DIR",
                      "Joins fetched planet tables into the planet schema, with quality checks "
                      "and a quarantine of rejected rows."),
}


def _own_flags(command: str) -> set[str]:
    # ingest-netcdf "accepts" --config only to refuse it by name; its help does not offer it
    return _COMMAND_FLAGS[command] - ({"config"} if command == "ingest-netcdf" else set())


def _help(command: str | None) -> str:
    """The data CLI's help, or one command's: its usage and only its own flags."""
    if command is None:
        lines = ["usage: python -m astrojax.data COMMAND [flags]", "", "commands:"]
        lines += [f"  {name:<14} {text}" for name, (_, text) in _COMMAND_HELP.items()]
        lines += ["", "python -m astrojax.data COMMAND --help shows a command's flags."]
        return "\n".join(lines)
    usage, text = _COMMAND_HELP[command]
    lines = [f"usage: python -m astrojax.data {usage}", "", text, "", "flags:",
             cli.describe_flags(sorted(_own_flags(command)), _SPELLED)]
    if command == "fetch":
        from astrojax.data.archives.registry import source_names

        lines += ["", f"sources: {', '.join(source_names())}"]
    elif command == "build-cubes":
        lines += ["", cli.config_sections_help()]
    return "\n".join(lines)


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing with one-line errors; returns [program, command, arguments...]."""
    if cli.wants_help(argv[1:]):
        command = next((a for a in argv[1:] if a in COMMANDS), None)
        cli.print_help(_help(command))
    rest = cli.parse_absl_flags([_underscored(a) for a in argv])
    if len(rest) < 2 or rest[1] not in COMMANDS:
        given = f"unknown command {rest[1]!r}" if len(rest) > 1 else "no command given"
        fail(f"{given}; expected one of: {', '.join(COMMANDS)}")
    return rest


def _underscored(arg: str) -> str:
    for hyphenated, name in _HYPHENATED.items():
        if arg == hyphenated or arg.startswith(hyphenated + "="):
            return name + arg[len(hyphenated):]
    return arg


def _check_flags_belong(command: str) -> None:
    own = _COMMAND_FLAGS[command]
    for name in sorted(set().union(*_COMMAND_FLAGS.values()) - own):
        if FLAGS[name].present:
            users = [c for c, names in _COMMAND_FLAGS.items() if name in names]
            fail(f"--{name.replace('_', '-')} belongs to {', '.join(users)}, not {command}")


def _loaded_config() -> Config:
    cfg = cli.loaded_config()
    try:
        validate(cfg)
    except ConfigError as err:
        fail(str(err))
    if not isinstance(cfg.data, CubeDataConfig):
        fail(f"config.data: build-cubes takes its grid from a datacube config (task "
             f"'datacube', e.g. configs/datacube_vit.py); task {cfg.task!r} has none")
    return cfg


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def build_cubes(args: list[str]) -> str:
    from astrojax.data.formats.cubes import build_synthetic_store, default_cube_store
    from astrojax.data.formats.store import StoreError
    from astrojax.data.generator.climate import CubeGrid

    if args:
        fail(f"build-cubes takes no arguments, got {' '.join(args)}")
    if FLAGS.config is None:
        fail("build-cubes needs --config, e.g. --config configs/quickstart.py")
    if FLAGS.variables is not None or FLAGS.time_steps is not None:
        fail("--variables and --time-steps belong to ingest-netcdf; build-cubes takes the "
              "grid from config.data.cube_*")
    cfg = _loaded_config()
    data, planets = cfg.data, cfg.planets
    grid = CubeGrid(data.cube_time_steps, data.cube_levels, data.cube_lat, data.cube_lon)
    url = FLAGS.store or data.cube_store or default_cube_store(planets.num_planets,
                                                               planets.seed, grid)
    start = time.perf_counter()
    try:
        store = build_synthetic_store(planets.num_planets, planets.seed, grid, url,
                                      progress=True)
    except StoreError as err:
        fail(_one_line(err))
    schema = store.schema
    return (f"{store.url}: {store.num_samples} planets x {len(schema.variables)} variables x "
            f"{'x'.join(map(str, schema.shape))} (time x level x lat x lon), "
            f"{len(schema.label_names)} labels, statistics saved "
            f"({time.perf_counter() - start:.1f} s)")


def ingest(args: list[str]) -> str:
    from astrojax.data.formats.netcdf import ingest_netcdf
    from astrojax.data.formats.store import StoreError, compute_stats

    if not args:
        fail("ingest-netcdf needs at least one netCDF file")
    if FLAGS.store is None:
        fail("ingest-netcdf needs --store PATH (a path or TensorStore kvstore URL)")
    if FLAGS.config is not None:
        fail("ingest-netcdf takes no --config")
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
        fail(_one_line(err))
    schema = store.schema
    return (f"{store.url}: {store.num_samples} samples from {len(args)} file(s) x "
            f"{', '.join(schema.variables)} x {'x'.join(map(str, schema.shape))} "
            f"(time x level x lat x lon), {stats} ({time.perf_counter() - start:.1f} s)")


def _fetch_options(source: str, fetch_fn) -> dict[str, str | int]:
    import inspect

    options: dict[str, str | int] = {}
    for item in FLAGS.option:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            fail(f"--option {item.split('=')[0]!r}: expected key=value")
        if key in options:
            fail(f"--option {key} given twice")
        options[key] = int(value) if re.fullmatch(r"[+-]?\d+", value.strip()) else value
    params = inspect.signature(fetch_fn).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        allowed = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
                   or (p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
                       and n not in ("config", "out_dir"))]
        for key in options:
            if key not in allowed:
                fail(f"{source}: unknown option {key!r}; its options: "
                      f"{', '.join(allowed) or 'none'}")
    return options


def fetch(args: list[str]) -> str:
    from astrojax.data.archives import SourceConfig, SourceError, redact
    from astrojax.data.archives.registry import UnknownSourceError, get_fetch, source_names

    if len(args) != 1:
        given = f"got {' '.join(args)}" if args else "none given"
        fail(f"fetch takes one SOURCE ({', '.join(source_names())}); {given}")
    name = args[0]
    try:
        fetch_fn = get_fetch(name)
    except UnknownSourceError as err:
        fail(_one_line(err))
    if FLAGS.out is None:
        fail("fetch needs --out DIR")
    options = _fetch_options(name, fetch_fn)
    config = SourceConfig(base_urls={name: FLAGS.base_url} if FLAGS.base_url else {},
                          cache_dir=FLAGS.cache or "", offline=FLAGS.offline)
    try:
        config.validate()
    except ConfigError as err:
        fail(f"--base-url: {err}" if FLAGS.base_url else str(err))
    from pathlib import Path

    start = time.perf_counter()
    try:
        result = fetch_fn(config, Path(FLAGS.out), **options)
    except (SourceError, ValueError, OSError) as err:
        message = _one_line(redact(str(err)))
        fail(message if message.startswith(name) else f"{name}: {message}")
    for item in result.skipped:
        print(f"skipped: {redact(item)}", file=sys.stderr)
    # A table the service cut at its row limit says so here; the skipped lines say how to narrow.
    tables = ", ".join(f"{t} {len(table)} rows"
                       f"{' [truncated]' if table.meta.get('truncated') else ''}"
                       for t, table in result.tables.items())
    return (f"{FLAGS.out}: {name} {len(result.tables)} table(s)"
            f"{f' ({tables})' if tables else ''}, {len(result.files)} file(s), "
            f"{len(result.skipped)} skipped, {len(result.provenance)} request(s) "
            f"({time.perf_counter() - start:.1f} s)")


def catalog(args: list[str]) -> str:
    from astrojax.data.archives.catalog import CatalogError, build_catalog

    if args:
        fail(f"build-catalog takes no arguments, got {' '.join(args)}; give folders with "
              f"--from DIR1,DIR2")
    folders = FLAGS["from"].value
    if not folders:
        fail("build-catalog needs --from DIR1,DIR2 (fetch output folders)")
    if FLAGS.out is None:
        fail("build-catalog needs --out DIR")
    start = time.perf_counter()
    try:
        build = build_catalog(folders, FLAGS.out, progress=True)
    except (CatalogError, OSError) as err:
        fail(_one_line(err))
    for item in build.skipped:
        print(f"skipped: {item}", file=sys.stderr)
    return f"{build.summary()} ({time.perf_counter() - start:.1f} s)"


_RUNNERS = {"build-cubes": build_cubes, "ingest-netcdf": ingest, "fetch": fetch,
            "build-catalog": catalog}


def main(argv: list[str]) -> None:
    command, args = argv[1], argv[2:]
    _check_flags_belong(command)
    print(_RUNNERS[command](args))


def run() -> None:
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
