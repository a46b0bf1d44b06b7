"""Training: the loop with its checkpoint schedule, optimizers and learning-rate schedule, evaluation."""
from .evaluate import CheckpointEvaluator, evaluate, logits_at
from .loop import epoch_order, initial_model, model_for, plan_run, train
from .optim import lr_at, make_optimizer

__all__ = ["CheckpointEvaluator", "evaluate", "logits_at", "epoch_order", "initial_model", "lr_at", "make_optimizer", "model_for", "plan_run", "train"]
