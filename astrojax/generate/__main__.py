"""``python -m astrojax.generate --checkpoint WORKDIR --prompt TEXT`` (or ``--prompts FILE``).

Prints each prompt's completion by a trained language model. Bad input is one line on stderr
(``error: ...``) and exit code 2.
"""

import logging
import sys
from pathlib import Path

from absl import app, flags

from astrojax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "A language-model training workdir (python -m "
                                        "astrojax.train --config configs/quickstart.py ...), or "
                                        "a Hugging Face model folder (Llama, Mistral, Qwen2: "
                                        "config.json, safetensors, tokenizer.json).")
flags.DEFINE_multi_string("prompt", None, "A prompt (repeat the flag for several).")
flags.DEFINE_string("prompts", None, "A UTF-8 file with one prompt per line (blank lines "
                                     "skipped).")
flags.DEFINE_integer("max_new_tokens", 256, "Most tokens generated per prompt.", lower_bound=1)
flags.DEFINE_float("temperature", 0.0, "Sampling temperature; 0 is greedy.", lower_bound=0.0)
flags.DEFINE_integer("top_k", 0, "Sample among the k likeliest tokens (0: all).", lower_bound=0)
flags.DEFINE_float("top_p", 1.0, "Nucleus sampling: the smallest set of tokens with this much "
                                 "probability (1: all).", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_integer("seed", 0, "Seed of the sampling key.", lower_bound=0)
flags.DEFINE_bool("sharded", True, "Shard over the run's mesh config, as in training; "
                                   "--nosharded runs on one device.")

_FLAGS = ("checkpoint", "prompt", "prompts", "max_new_tokens", "temperature", "top_k", "top_p",
          "seed", "sharded")
USAGE = """usage: python -m astrojax.generate --checkpoint WORKDIR
           (--prompt TEXT ... | --prompts FILE) [--max_new_tokens 256]
           [--temperature 0] [--top_k 0] [--top_p 1] [--seed 0] [--nosharded]

Continues each prompt with the language model trained in WORKDIR, or the Hugging Face model in
that folder (greedy unless a temperature is given), and prints prompt and completion, one block
per prompt.
"""


def parse_flags(argv: list[str]) -> list[str]:
    if cli.wants_help(argv[1:]):
        cli.print_help("\n".join([USAGE, "flags:", cli.describe_flags(_FLAGS)]))
    rest = cli.parse_absl_flags(argv)
    if FLAGS.checkpoint is None:
        cli.fail("--checkpoint is required (python -m astrojax.generate --help)")
    if not FLAGS.prompt and FLAGS.prompts is None:
        cli.fail("give --prompt TEXT or --prompts FILE (python -m astrojax.generate --help)")
    if FLAGS.top_p == 0:
        cli.fail("--top_p must be in (0, 1]")
    return rest


def read_prompts() -> list[str]:
    prompts = list(FLAGS.prompt or [])
    if FLAGS.prompts is not None:
        path = Path(FLAGS.prompts)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            cli.fail(f"no prompts file at {path}")
        except (OSError, UnicodeDecodeError) as err:
            cli.fail(f"cannot read prompts file {path}: {err}")
        prompts += [line for line in text.splitlines() if line.strip()]
        if not prompts:
            cli.fail(f"prompts file {path} holds no prompt (every line is blank)")
    return prompts


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    for noisy in ("absl", "orbax", "jax._src", "grain"):  # their INFO lines are not for users
        logging.getLogger(noisy).setLevel(logging.WARNING)
    prompts = read_prompts()
    import jax

    from astrojax.config import ConfigError
    from astrojax.data.tokenizer import TokenizerError
    from astrojax.generate import load_generator
    from astrojax.models.hf import HFCheckpointError
    from astrojax.train.checkpoint import CheckpointError
    from astrojax.train.workdir import WorkdirError

    try:
        generator = load_generator(FLAGS.checkpoint, sharded=FLAGS.sharded)
        sampled = FLAGS.temperature > 0
        completions = generator(prompts, max_new_tokens=FLAGS.max_new_tokens,
                                temperature=FLAGS.temperature, top_k=FLAGS.top_k,
                                top_p=FLAGS.top_p,
                                rng=jax.random.key(FLAGS.seed) if sampled else None)
    except (WorkdirError, CheckpointError, ConfigError, HFCheckpointError, TokenizerError,
            ValueError) as err:
        cli.fail(" ".join(str(err).split()))
    for prompt, completion in zip(prompts, completions, strict=True):
        print(f"{prompt}{completion}\n", file=sys.stdout)


def run() -> None:
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
