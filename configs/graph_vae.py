"""Graph VAE on the built-in planets' metabolic networks (one synthetic network per planet).

    python -m astrojax.train --config configs/graph_vae.py --workdir runs/graph_vae

A 3-layer graph transformer encoder (hidden 64, 4 heads) with node and graph latents, trained
on the networks of the 3,292 train-split planets and evaluated on 256 of the 391 val planets
(planets.val_fraction 0.1; test scored once at the end); global batches of 32 graphs in 8
sub-batches of 4, each padded to one of three size buckets. After the last step a linear probe
of the biosphere class on the graph latents runs on the held-out planets (eval/probe/... in
metrics.jsonl), beside a probe on simple graph counts. Time on a 2-core CPU and the figures it
reaches are in the README's graph VAE section.
"""

from astrojax.config import Config


def get_config() -> Config:
    cfg = Config(task="graph_vae")
    cfg.planets.num_planets = 4096
    cfg.planets.val_fraction = 0.1
    cfg.planets.test_fraction = 0.1
    cfg.data.graphs_per_sub_batch = 4
    cfg.train.global_batch_size = 32  # 8 sub-batches: splits over 1, 2, 4 or 8 devices
    g = cfg.model
    g.hidden_dim = 64
    g.num_layers = 3
    g.num_heads = 4
    g.mlp_dim = 128
    g.node_latent_dim = 16
    g.graph_latent_dim = 32
    g.random_walk_steps = 8
    g.beta = 0.01  # see GraphVAEConfig.beta
    g.kl_warmup_steps = 100
    cfg.train.steps = 500
    cfg.train.log_every = 25
    cfg.train.eval_every = 250
    cfg.train.eval_batches = 8
    cfg.train.checkpoint_every = 250
    cfg.optim.learning_rate = 2e-3
    cfg.optim.warmup_steps = 20
    cfg.optim.weight_decay = 0.01
    return cfg
