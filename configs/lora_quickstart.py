"""LoRA: the quickstart language model, trained on the planets' descriptions, fine-tuned on a
text it never saw, the observing notes an astronomer writes from a planet's catalogue row
(another style, other facts: "Teff=4497 +/- 61 K; P=272.732 +/- 0.026 d; ...").

    python -m astrojax.train --config configs/quickstart.py --workdir runs/quickstart
    python -m astrojax.train --config configs/lora_quickstart.py --workdir runs/lora_notes \\
        --config.lora.base=runs/quickstart

Rank-8 adapters on every projection (q, k, v, o, gate, up, down) of the frozen 0.84M-parameter
model: 77,824 trainable parameters (9.3%), 0.62 MB of optimizer state instead of 6.7 MB, and
checkpoints of the adapters alone. Same model, data split and optimizer as the quickstart; 100
steps. The held-out figures (base model, LoRA and full fine-tuning at the same steps, against
an 8-gram model of the training notes) are measured by ``python benchmarks/lora.py``
(benchmarks/results/lora.json). Dropout is 0 here: 100 steps see each note about twice, and
on a CPU its threefry masks cost about 40% of a step (set ``--config.lora.dropout=0.05`` for
longer runs).
"""

import runpy
from pathlib import Path

from astrojax.config import Config, LoRAConfig


def get_config() -> Config:
    cfg = runpy.run_path(str(Path(__file__).with_name("quickstart.py")))["get_config"]()
    cfg.data.corpus = "notes"
    cfg.lora = LoRAConfig(rank=8, alpha=16.0, dropout=0.0,
                          targets=("q", "k", "v", "o", "gate", "up", "down"),
                          base="runs/quickstart")
    cfg.train.steps = 100
    cfg.train.eval_every = 50
    cfg.train.checkpoint_every = 50
    cfg.optim.warmup_steps = 10
    return cfg
