"""Distillation: losses, objectives, the trainer, checkpoints, and the task and teacher jobs."""
