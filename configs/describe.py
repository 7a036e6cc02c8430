"""Describe: the language model writes a planet's description from the planet's data.

    python -m astrojax.train --config configs/fusion.py --workdir runs/fusion-cs \
        --config.data.modalities="('catalogue', 'spectrum')"
    python -m astrojax.train --config configs/quickstart.py --workdir runs/quickstart
    python -m astrojax.train --config configs/describe.py --workdir runs/describe \
        --config.model.fusion_init=runs/fusion-cs --config.model.lm_init=runs/quickstart

The fusion model of the catalogue + spectrum run (frozen) gives each planet's embedding; a
projector (MLP, 64 -> 256 -> 4 x 128) makes it 4 soft-prompt vectors; the quickstart's
language model, warm-started, learns to write the planet's description after them.
``--config.model.prefix_tokens=0`` is the control: the same language model trained the same way
with no prefix. ``python benchmarks/describe.py`` runs all of it (both runs from the same
starting points), generates the test planets' descriptions and scores the facts they state
against the truth (benchmarks/results/describe.json); the README's "Describing a planet" has
the figures and the time on a 2-core CPU.
"""

from astrojax.config import Config


def get_config() -> Config:
    cfg = Config(task="describe")
    cfg.planets.num_planets = 4096  # the fusion and quickstart runs' planets and split
    m = cfg.model
    m.prefix_tokens = 4
    m.projector_dim = 256
    m.fusion_init = "runs/fusion-cs"
    m.lm_init = "runs/quickstart"
    # the fusion run's inputs (configs/fusion.py with the catalogue and the spectra only)
    cfg.data.modalities = ("catalogue", "spectrum")
    cfg.data.spectrum_rate = 0.3
    cfg.data.instrument = "nirspec_prism"
    cfg.data.n_transits = 3
    cfg.data.description_length = 496
    cfg.train.steps = 200
    cfg.train.global_batch_size = 8
    cfg.train.log_every = 10
    cfg.train.eval_every = 100
    cfg.train.eval_batches = 8  # 64 of the ~400 val planets' descriptions
    cfg.train.checkpoint_every = 100
    cfg.optim.learning_rate = 1e-3
    cfg.optim.warmup_steps = 20
    return cfg
