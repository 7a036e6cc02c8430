"""The quickstart-sized train step: ours beside Hugging Face transformers' LlamaForCausalLM
(PyTorch) on the same model, the same batches, in one run.

    pip install -e ".[bench]"
    python benchmarks/step_vs_torch.py                      # 16 x 256 tokens (~5 min)
    python benchmarks/step_vs_torch.py --batch 8 --seq 512  # the current quickstart's rows

The model is the quickstart's (configs/quickstart.py: 4 layers, d_model 128, 4 query / 2
key-value heads of 32, SwiGLU 384, vocabulary 384, float32), initialised by our initialisers and
written with ``to_hf``, so both sides start from identical weights. Each side runs a full
optimizer step: forward, next-token cross-entropy, backward, global-norm clipping at 1.0 and
AdamW (ours: ``astrojax.train``'s jitted step with donated state, fed through the loop's own
``Program.shard``; PyTorch: ``torch.optim.AdamW`` with its default foreach implementation,
``attn_implementation="sdpa"``, its default intra-op threads, one per core). Batches are the
lm task's packed rows; our step masks attention at document boundaries (segment ids), PyTorch's
runs plain causal attention over the row (SDPA has no segment mask), which is no more work.

Steps alternate between the two in rounds (``--rounds`` x ``--steps``), so drift on a shared
machine hits both alike; each round's time covers its steps back to back, waiting only at the
end. Reported: each side's tokens per second (median over rounds) and the ratio. Writes
benchmarks/results/step_vs_torch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def quickstart_config(batch: int, seq: int):
    from astrojax.cli import load_config_file

    cfg = load_config_file(ROOT / "configs" / "quickstart.py")
    cfg.train.global_batch_size = batch
    cfg.data.seq_len = seq
    cfg.model.max_seq_len = max(cfg.model.max_seq_len, seq)
    return cfg


class Ours:
    """astrojax's jitted train step on one device, as the train loop runs it."""

    def __init__(self, cfg):
        import jax
        from flax import nnx

        from astrojax.config import MeshConfig
        from astrojax.sharding import make_mesh
        from astrojax.tasks import get_task
        from astrojax.train.step import abstract_model, build_program

        self.cfg = cfg
        self.task = get_task(cfg)
        self.mesh = make_mesh(MeshConfig(), jax.devices()[:1])
        self.program = build_program(cfg, self.task, self.mesh)
        with jax.set_mesh(self.mesh):
            self.state = self.program.init()
        graphdef, _ = abstract_model(self.task, cfg.train.seed)
        self.model = nnx.merge(graphdef, jax.device_get(self.state.params))

    def batches(self, n: int) -> list[dict]:
        it = iter(self.task.train_data(0, 1))
        return [next(it) for _ in range(n)]

    def run(self, batches) -> float:
        import jax

        start = time.perf_counter()
        with jax.set_mesh(self.mesh):
            metrics = None
            for batch in batches:
                self.state, metrics = self.program.train_step(self.state,
                                                              self.program.shard(batch))
            jax.block_until_ready(metrics)
        return time.perf_counter() - start


class Torch:
    """transformers' LlamaForCausalLM with the same weights, AdamW and clipping."""

    def __init__(self, cfg, model):
        import torch
        import transformers

        from astrojax.models.hf import to_hf

        self.torch = torch
        with tempfile.TemporaryDirectory() as folder:
            to_hf(model, folder)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.float32, attn_implementation="sdpa")
        self.model.train()
        o = cfg.optim
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=o.learning_rate,
                                     betas=(o.b1, o.b2), eps=o.eps,
                                     weight_decay=o.weight_decay)
        self.clip = o.grad_clip_norm

    def run(self, batches) -> float:
        torch = self.torch
        inputs = [(torch.as_tensor(b["tokens"], dtype=torch.long),
                   torch.as_tensor(b["positions"], dtype=torch.long)) for b in batches]
        start = time.perf_counter()
        for tokens, positions in inputs:
            logits = self.model(input_ids=tokens, position_ids=positions).logits
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--attention_impl", default=None,
                        help="override the config's model.attention_impl (default: auto)")
    parser.add_argument("--out", type=Path, default=RESULTS / "step_vs_torch.json")
    args = parser.parse_args(argv)

    import jax
    import torch
    import transformers

    cfg = quickstart_config(args.batch, args.seq)
    if args.attention_impl:
        cfg.model.attention_impl = args.attention_impl
    ours = Ours(cfg)
    theirs = Torch(cfg, ours.model)
    batches = ours.batches(args.steps)
    tokens = args.batch * args.seq * args.steps
    start = time.perf_counter()
    ours.run(batches[:1])
    first_ours = time.perf_counter() - start
    theirs.run(batches[:2])  # warm-up: allocator, threads
    ours.run(batches[:2])
    rounds = {"astrojax": [], "torch": []}
    for r in range(args.rounds):
        rounds["astrojax"].append(tokens / ours.run(batches))
        rounds["torch"].append(tokens / theirs.run(batches))
        print(f"round {r}: astrojax {rounds['astrojax'][-1]:,.0f} tokens/s, "
              f"torch {rounds['torch'][-1]:,.0f} tokens/s", flush=True)
    median = {k: statistics.median(v) for k, v in rounds.items()}
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared 2-core CPU)",
        "command": "python benchmarks/step_vs_torch.py " + " ".join(sys.argv[1:]),
        "versions": {"jax": jax.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__},
        "torch_threads": torch.get_num_threads(),
        "model": "quickstart (4 layers, d_model 128, 4/2 heads of 32, MLP 384, vocab 384)",
        "batch": args.batch, "seq_len": args.seq, "steps_per_round": args.steps,
        "attention_impl": cfg.model.attention_impl,
        "tokens_per_second_rounds": {k: [round(x) for x in v] for k, v in rounds.items()},
        "tokens_per_second": {k: round(v) for k, v in median.items()},
        "astrojax_over_torch": round(median["astrojax"] / median["torch"], 3),
        "astrojax_first_step_s": round(first_ours, 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    key = f"{args.batch}x{args.seq}"
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    old[key] = result
    args.out.write_text(json.dumps(old, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
