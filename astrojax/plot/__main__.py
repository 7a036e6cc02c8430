"""``python -m astrojax.plot WORKDIR [WORKDIR ...] [--out FILE]``.

Draws the training curves of one or several runs (loss, eval metrics beside their baselines,
learning rate, throughput) from their metrics.jsonl into one PNG and prints its path. Bad input
is one line on stderr (``error: ...``) and exit code 2.
"""

from absl import app, flags

from astrojax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "The PNG to write (default: plots.png in the first workdir).")

USAGE = """usage: python -m astrojax.plot WORKDIR [WORKDIR ...] [--out FILE]

Draws the training curves of the runs in the WORKDIRs (python -m astrojax.train --workdir ...)
from their metrics.jsonl into one PNG, one colour per run: the train and eval loss, each eval
metric with its baselines dashed and the test score as a cross, the learning rate and the
throughput.
"""


def parse_flags(argv: list[str]) -> list[str]:
    if cli.wants_help(argv[1:]):
        cli.print_help("\n".join([USAGE, "flags:", cli.describe_flags(("out",))]))
    return cli.parse_absl_flags(argv)


def main(argv: list[str]) -> None:
    workdirs = argv[1:]
    if not workdirs:
        cli.fail("name at least one workdir: python -m astrojax.plot WORKDIR [WORKDIR ...]")
    from astrojax.plot import PlotError, plot

    try:
        out = plot(workdirs, FLAGS.out)
    except PlotError as err:
        cli.fail(str(err))
    except ModuleNotFoundError as err:
        if err.name != "matplotlib":
            raise
        cli.fail("plotting needs matplotlib: pip install matplotlib")
    print(out)


def run() -> None:
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
