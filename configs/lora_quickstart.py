"""LoRA: the quickstart language model, trained on the planets' descriptions, fine-tuned on a
text it never saw, the observing notes an astronomer writes from a planet's catalogue row
(another style, other facts: "Teff=4497 +/- 61 K; P=272.732 +/- 0.026 d; ...").

    python -m astrojax.train --config configs/quickstart.py --workdir runs/quickstart
    python -m astrojax.train --config configs/lora_quickstart.py --workdir runs/lora_notes \\
        --config.lora.base=runs/quickstart

Rank-8 adapters on every projection (q, k, v, o, gate, up, down) of the frozen 0.84M-parameter
model: 77,824 trainable parameters (9.3%), 0.62 MB of optimizer state instead of 6.7 MB, and
checkpoints of the adapters alone (0.31 MB). Same model, data split and batches as the
quickstart; learning rate 1e-2, the best of 1e-3, 3e-3 and 1e-2 on the val notes. After 60
steps from a 100-step base (``python benchmarks/lora.py --learning-rates 1e-3,3e-3,1e-2``,
benchmarks/results/lora.json) the test notes cost 0.671 nats per byte (79.5% next-byte
accuracy), level with an 8-gram model of the training notes (0.656, 78.8%), against 4.90 for
the base model and 0.484 (83.2%) for full fine-tuning at its best rate. Dropout is 0 here: 100
steps of 8 x 512 bytes see about 60% of the train notes once, and on this CPU its threefry
masks made a step about 45% longer (3.7 s vs 2.5 s, once, on the loaded shared machine); try
``--config.lora.dropout=0.05`` for longer runs.
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
    cfg.optim.learning_rate = 1e-2
    cfg.optim.warmup_steps = 10
    return cfg
