"""The package's import structure: the import-linter contracts in pyproject.toml (no cycle
between sibling modules or subpackages; data, models and evaluators import nothing above
them), and every module importable in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Imports each module of astrojax in turn; prints the ones that fail. The CLI entry points
# (__main__) define absl flags at import and run as their own processes: their tests cover them.
_IMPORT_ALL = """
import importlib, pkgutil, traceback
import astrojax
assert astrojax.__file__.startswith({root!r}), astrojax.__file__
names = [m.name for m in pkgutil.walk_packages(astrojax.__path__, "astrojax.")
         if not m.name.endswith(".__main__")]
failed = 0
for name in names:
    try:
        importlib.import_module(name)
    except Exception:
        failed += 1
        print(f"--- {{name}}\\n{{traceback.format_exc(limit=3)}}")
print(f"imported {{len(names) - failed}} of {{len(names)}} modules")
"""


def _run(*args: str) -> subprocess.CompletedProcess:
    """``python args`` in the repository root, importing this checkout's astrojax."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_import_contracts_hold():
    proc = _run("-c", "from importlinter.cli import lint_imports_command; "
                      "lint_imports_command()", "--no-cache")
    assert "Contracts: " in proc.stdout, proc.stdout + proc.stderr  # it really ran them
    assert proc.returncode == 0, proc.stdout[proc.stdout.find("Contracts"):] + proc.stderr


def test_every_module_imports_in_a_fresh_process():
    proc = _run("-c", _IMPORT_ALL.format(root=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    assert "--- " not in proc.stdout, proc.stdout
    imported = int(proc.stdout.split("imported ")[-1].split()[0])
    assert imported > 40, proc.stdout  # the walk found the whole package (84 modules now)
