"""What the command-line programs share: the ``--config`` flag, flag parsing with one-line
errors (exit code 2), config loading, and ``--help`` that prints a program's own flags and
exits 0 (absl's exits 1 and lists every flag of every library).

``python -m astrojax.train`` and ``python -m astrojax.data`` both build on this module, so the
data CLI does not depend on the train package.
"""

import dataclasses
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
    """The ``--config.SECTION.FIELD=VALUE`` overrides: the sections and their fields."""
    hints = typing.get_type_hints(Config)
    lines = ["Override any config field with --config.SECTION.FIELD=VALUE; the sections:"]
    for f in dataclasses.fields(Config):
        cls = hints[f.name]
        if dataclasses.is_dataclass(cls):
            names = ", ".join(g.name for g in dataclasses.fields(cls))
            lines.append(f"  {f.name}: {names}")
        else:
            lines.append(f"  {f.name} (a value, e.g. --config.{f.name}=...)")
    return "\n".join(lines)


def _check_override_key(path: str) -> None:
    """Names an unknown ``--config.a.b`` key and the keys allowed at that level."""
    cls: typing.Any = Config
    walked = []
    for part in path.split("."):
        if not dataclasses.is_dataclass(cls):
            fail(f"config.{'.'.join(walked)} is a value, not a section; cannot set "
                 f"config.{path}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            where = f"config.{'.'.join(walked)}" if walked else "config"
            fail(f"config.{path}: unknown key {part!r} in {where}; allowed: "
                 f"{', '.join(fields)}")
        cls = typing.get_type_hints(cls)[part]
        walked.append(part)


def parse_absl_flags(argv: list[str]) -> list[str]:
    """absl flag parsing (``--config.x.y=v`` overrides included) with one-line errors (exit
    code 2) instead of tracebacks; returns the arguments that are not flags. Call
    :func:`wants_help` first: this does not handle ``--help``."""
    for arg in argv[1:]:
        match = _OVERRIDE.match(arg)
        if match:
            _check_override_key(match.group(1))
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
