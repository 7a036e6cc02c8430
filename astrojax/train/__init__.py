"""Training: the loop, pure steps, optimizers, checkpoints and metrics."""
