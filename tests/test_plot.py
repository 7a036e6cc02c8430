"""python -m astrojax.plot: the panels of one and of several runs, the PNG, and bad input."""

import subprocess
import sys

import pytest

from astrojax.plot import PlotError, figure, plot, read_run
from astrojax.train.metrics import MetricsWriter


def write_run(workdir, *, lr_scale=1.0, best=False, unigram=3.4):
    """A workdir whose metrics.jsonl the train loop's own writer wrote: train records every
    step, evals every 2 steps with baselines, and the test split at the end."""
    writer = MetricsWriter(workdir)
    for step in range(1, 7):
        writer.write(step, {"loss": 3.0 - 0.3 * step, "learning_rate": lr_scale * 1e-3 * step,
                            "tokens_per_second": 1000.0 + step})
        if step % 2 == 0:
            writer.write(step, {"loss": 3.1 - 0.3 * step, "accuracy": 0.1 * step,
                                "baseline/uniform/loss": 5.5, "baseline/unigram/loss": unigram,
                                "baseline/unigram/accuracy": 0.17}, prefix="eval/")
    writer.write(6, {"loss": 1.5, "accuracy": 0.55, "baseline/uniform/loss": 5.5,
                     **({"from_step": 4} if best else {})}, prefix="test/")
    writer.close()
    return workdir


def panels(fig):
    return {ax.get_title(): ax for ax in fig.axes}


def labels(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_one_run_has_the_loss_eval_learning_rate_and_throughput_panels(tmp_path):
    run = read_run(write_run(tmp_path / "quick", best=True))
    fig = figure([run])
    shown = panels(fig)
    assert list(shown) == ["loss", "eval/accuracy", "learning_rate", "throughput"]
    loss = labels(shown["loss"])
    assert set(loss) == {"train", "eval", "baseline uniform", "baseline unigram",
                         "test (step 4's parameters)"}
    assert list(loss["train"].get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert list(loss["eval"].get_xdata()) == [2, 4, 6]
    assert loss["baseline uniform"].get_linestyle() == "--"
    assert loss["eval"].get_linestyle() == "-"
    assert shown["loss"].get_yscale() == "log" and shown["learning_rate"].get_yscale() == "linear"
    assert list(loss["test (step 4's parameters)"].get_xdata()) == [4]  # where it was scored
    accuracy = labels(shown["eval/accuracy"])
    assert set(accuracy) == {"eval/accuracy", "baseline unigram", "test (step 4's parameters)"}
    assert list(labels(shown["learning_rate"])["learning_rate"].get_ydata()) == pytest.approx(
        [1e-3 * s for s in range(1, 7)])
    assert "tokens_per_second" in labels(shown["throughput"])
    assert fig._suptitle.get_text() == "quick"


def test_two_runs_one_colour_each_named_by_workdir(tmp_path):
    runs = [read_run(write_run(tmp_path / "a")),
            read_run(write_run(tmp_path / "b", lr_scale=2.0, unigram=3.0))]
    shown = panels(figure(runs))
    lr = labels(shown["learning_rate"])
    assert set(lr) == {"a", "b"}
    assert lr["a"].get_color() != lr["b"].get_color()
    assert lr["b"].get_ydata()[-1] == pytest.approx(2 * lr["a"].get_ydata()[-1])
    loss = labels(shown["loss"])
    # the runs share the uniform baseline (drawn once, grey); b's unigram one differs
    assert set(loss) == {"a train", "a eval", "a test", "b train", "b eval", "b test",
                         "baseline uniform", "baseline unigram", "b baseline unigram"}
    assert loss["b baseline unigram"].get_color() == loss["b eval"].get_color()
    assert loss["baseline unigram"].get_color() not in (loss["a eval"].get_color(),
                                                        loss["b eval"].get_color())
    assert loss["b baseline unigram"].get_ydata()[0] == 3.0


@pytest.mark.slow
def test_the_cli_writes_plots_png_in_the_first_workdir(tmp_path):
    first, second = write_run(tmp_path / "a"), write_run(tmp_path / "b")
    done = subprocess.run([sys.executable, "-m", "astrojax.plot", str(first), str(second)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(first / "plots.png")
    assert (first / "plots.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "elsewhere.png"
    assert plot([second], out) == out and out.stat().st_size > 10_000


def test_a_live_runs_half_written_last_line_is_skipped(tmp_path):
    workdir = write_run(tmp_path / "live")
    with (workdir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 7, "loss": 1.')
    assert read_run(workdir).records[-1]["step"] == 6


@pytest.mark.parametrize("content, needle", [
    (None, "no such file"),
    ("", "empty"),
    ('{"step": 1, "loss": 2.0}\nnot json\n{"step": 2, "loss": 1.0}\n', "line 2 is not"),
    ('{"loss": 2.0}\n', "line 1 is not a metrics record"),
])
def test_bad_metrics_files_are_one_line_naming_the_file(tmp_path, content, needle):
    workdir = tmp_path / "run"
    workdir.mkdir()
    if content is not None:
        (workdir / "metrics.jsonl").write_text(content)
    with pytest.raises(PlotError, match=needle) as err:
        plot([workdir])
    assert str(workdir / "metrics.jsonl") in str(err.value)
    assert "\n" not in str(err.value)


def test_the_cli_reports_bad_input_in_one_line_with_exit_code_2(tmp_path):
    good = write_run(tmp_path / "good")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.jsonl").write_text("{oops\n")
    done = subprocess.run([sys.executable, "-m", "astrojax.plot", str(good),
                           str(tmp_path / "bad")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'bad' / 'metrics.jsonl'}: line 1 is not a metrics record "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"]
    assert not (good / "plots.png").exists()
