"""What the command-line programs share: the ``--config`` flag, flag parsing with one-line
errors (exit code 2), config loading, and ``--help`` that prints a program's own flags and
exits 0 (absl's exits 1 and lists every flag of every library).

``python -m astrojax.train`` and ``python -m astrojax.data`` both build on this module, so the
data CLI does not depend on the train package.
"""

import dataclasses
import importlib.util
import os
import re
import sys
import typing
from collections.abc import Iterable

from absl import flags
from ml_collections import config_flags

from astrojax.config import Config

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file in configs/ (its "
                                "get_config() returns an astrojax.config.Config).",
                                lock_config=True)

_OVERRIDE = re.compile(r"^--config\.([\w.]+)(=.*)?$")
HELP_FLAGS = ("--help", "-help", "-h", "--helpshort", "--helpfull", "-?")


def fail(message: str) -> typing.NoReturn:
    """``error: MESSAGE`` on stderr and exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def wants_help(argv: Iterable[str]) -> bool:
    return any(arg in HELP_FLAGS for arg in argv)


def print_help(text: str) -> typing.NoReturn:
    """Prints ``text`` on stdout and exits 0, as users and scripts expect of ``--help``."""
    try:
        print(text.rstrip(), flush=True)
    except BrokenPipeError:  # `--help | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def describe_flags(names: Iterable[str], spelled: dict[str, str] | None = None) -> str:
    """One help line per flag: ``--name  help (default: value)``; ``spelled`` maps a flag's
    name to the spelling users type (``time_steps`` -> ``time-steps``)."""
    spelled = spelled or {}
    lines = []
    for name in names:
        flag = FLAGS[name]
        default = "" if flag.default in (None, [], "") else f" (default: {flag.default})"
        text = " ".join(flag.help.split())
        lines.append(f"  --{spelled.get(name, name):<12} {text}{default}")
    return "\n".join(lines)


def config_sections_help() -> str:
    """The ``--config.SECTION.FIELD=VALUE`` overrides: the sections and their fields, per task
    for the task's own sections."""
    from astrojax.config import TASK_SECTIONS

    lines = ["Override any config field with --config.SECTION.FIELD=VALUE; the sections:"]
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        cls = hints[f.name]
        if f.name in ("model", "data", "planets"):
            continue
        if dataclasses.is_dataclass(cls):
            lines.append(f"  {f.name}: {_field_names(cls)}")
        else:
            lines.append(f"  {f.name} (a value, e.g. --config.{f.name}=...)")
    lines.append("and, by task (config.task), its model and data sections (and planets, the "
                 "population and its split, for tasks that read it):")
    for task, sections in TASK_SECTIONS.items():
        lines.append(f"  {task}: model ({sections.model.__name__}): "
                     f"{_field_names(sections.model)}")
        lines.append(f"  {' ' * len(task)}  data ({sections.data.__name__}): "
                     f"{_field_names(sections.data)}")
    from astrojax.config import PlanetsConfig

    lines.append(f"  planets: {_field_names(PlanetsConfig)}")
    return "\n".join(lines)


def _field_names(cls: type) -> str:
    return ", ".join(g.name for g in dataclasses.fields(cls))


def _check_override_key(path: str, cfg: typing.Any) -> None:
    """Names an unknown ``--config.a.b`` key of the loaded config ``cfg`` (whose task decides
    its model and data sections) and the keys allowed at that level."""
    node, walked = cfg, []
    for part in path.split("."):
        if not dataclasses.is_dataclass(node):
            what = "unset (None)" if node is None else "a value, not a section"
            fail(f"config.{'.'.join(walked)} is {what}; cannot set config.{path}")
        fields = [f.name for f in dataclasses.fields(node)]
        if part not in fields:
            where = f"config.{'.'.join(walked)}" if walked else "config"
            fail(f"config.{path}: unknown key {part!r} in {where}"
                 f"{_task_note(cfg, walked)}; allowed: {', '.join(fields)}")
        node = getattr(node, part)
        walked.append(part)


def _task_note(cfg: typing.Any, walked: list[str]) -> str:
    if walked and walked[0] in ("model", "data") and isinstance(cfg, Config):
        return f" (a {type(getattr(cfg, walked[0])).__name__}: task {cfg.task!r})"
    return ""


def _config_file(argv: list[str]) -> typing.Any:
    """The Config of the ``--config`` file named in ``argv``, loaded the way ml_collections
    loads it; None if there is none or it does not load (the flag parser then says why)."""
    path = None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
    if path is None:
        return None
    try:
        return load_config_file(path)
    except Exception:  # noqa: BLE001 (reported by the flag parser, with the file's own error)
        return None


def load_config_file(path: str | os.PathLike) -> Config:
    """``get_config()`` of the config file at ``path`` (``configs/NAME.py``), loaded as
    ml_collections loads ``--config`` (a fresh module each call); for scripts and benchmarks
    that start from a shipped config and change fields in Python."""
    spec = importlib.util.spec_from_file_location("_astrojax_config_file", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def parse_absl_flags(argv: list[str]) -> list[str]:
    """absl flag parsing (``--config.x.y=v`` overrides included) with one-line errors (exit
    code 2) instead of tracebacks; returns the arguments that are not flags. Call
    :func:`wants_help` first: this does not handle ``--help``."""
    overrides = [m.group(1) for m in map(_OVERRIDE.match, argv[1:]) if m]
    cfg = _config_file(argv) if overrides else None
    if cfg is not None:
        for path in overrides:
            _check_override_key(path, cfg)
    try:
        return FLAGS(argv)
    except flags.Error as err:
        match = re.search(r"--config\.([\w.]+)=(.*?): (.*)", str(err))
        if match:
            fail(f"config.{match.group(1)}: cannot use {match.group(2)!r}: {match.group(3)}")
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        if "Traceback (most recent call last):" in lines:  # the config file itself raised
            fail(f"{lines[0].removesuffix(':')}: {lines[-1]}")
        fail(lines[0])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        fail(f"cannot apply config overrides: {err}")


def loaded_config() -> Config:
    """The ``--config`` file's Config, or a one-line error if it failed to load."""
    cfg = FLAGS.config
    if not isinstance(cfg, Config):
        load_error = getattr(cfg, "__dict__", {}).get("_error")
        if load_error is not None:  # ml_collections defers a failed config-file load
            fail(f"cannot load config file {FLAGS['config'].config_filename}: "
                 f"{str(load_error).strip().splitlines()[-1].strip()}")
        fail(f"{FLAGS['config'].config_filename}: get_config() must return astrojax.config."
             f"Config, got {type(cfg).__name__}")
    return cfg
