"""``python -m astrojax.predict --checkpoint WORKDIR --catalog DIR --out FILE [--spectra DIR]``.

Runs a trained fusion model on a ``build-catalog`` folder; writes the ranked table (ECSV) and a
PNG of the ranking beside it, and prints a one-line summary. Bad input is one line on stderr
(``error: ...``) and exit code 2.
"""

import logging
import sys
from pathlib import Path

from absl import app, flags

from astrojax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "A fusion training workdir (python -m astrojax.train "
                                        "--config configs/fusion.py --workdir WORKDIR).")
flags.DEFINE_string("catalog", None, "A build-catalog output folder (or its catalog.ecsv).")
flags.DEFINE_string("out", None, "Output table (ECSV); the ranking PNG is written beside it.")
flags.DEFINE_string("spectra", None, "Optional folder of spectrum files named by planet "
                                     "(TRAPPIST-1 e.ecsv, trappist-1_e.txt, ...).")
flags.DEFINE_integer("samples", 32, "Monte Carlo draws per planet within the catalogue's "
                                    "errors.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the Monte Carlo draws.", lower_bound=0)
flags.DEFINE_integer("top", 20, "Planets shown in the ranking PNG.", lower_bound=1)

_FLAGS = ("checkpoint", "catalog", "out", "spectra", "samples", "seed", "top")
USAGE = """usage: python -m astrojax.predict --checkpoint WORKDIR --catalog DIR --out FILE \\
           [--spectra DIR] [--samples 32] [--seed 0] [--top 20]

Probabilities of habitability and of a biosignature for the planets of a build-catalog folder,
from a fusion model trained on astrojax's synthetic population, with uncertainties from the
catalogue's measurement errors (not the model's own). Quarantined rows are listed, not
predicted.
"""


def parse_flags(argv: list[str]) -> list[str]:
    if cli.wants_help(argv[1:]):
        cli.print_help("\n".join([USAGE, "flags:", cli.describe_flags(_FLAGS)]))
    rest = cli.parse_absl_flags(argv)
    for name in ("checkpoint", "catalog", "out"):
        if FLAGS[name].value is None:
            cli.fail(f"--{name} is required (python -m astrojax.predict --help)")
    return rest


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    for noisy in ("absl", "orbax", "jax._src", "grain"):  # their INFO lines are not for users
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from astrojax.config import ConfigError
    from astrojax.data.archives.catalog import CatalogError
    from astrojax.data.formats.spectra import SpectrumFileError
    from astrojax.predict import PredictError, predict, write
    from astrojax.train.checkpoint import CheckpointError
    from astrojax.train.workdir import WorkdirError

    out = Path(FLAGS.out)
    try:
        prediction = predict(FLAGS.checkpoint, FLAGS.catalog, FLAGS.spectra,
                             samples=FLAGS.samples, seed=FLAGS.seed)
        for note in prediction.warnings:
            print(f"warning: {note}", file=sys.stderr)
        write(prediction, out, FLAGS.top)
    except (WorkdirError, CheckpointError, CatalogError, SpectrumFileError, PredictError,
            ConfigError) as err:
        cli.fail(" ".join(str(err).split()))
    except OSError as err:
        cli.fail(f"cannot write {out}: {err.strerror or err}")
    print(prediction.summary(out))


def run() -> None:
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
