"""Plain evaluation of one network on one split: mean cross-entropy and top-1 error."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Split


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split, batch_size: int = 1000, device: str | torch.device = "cpu") -> tuple[float, float]:
    """(mean cross-entropy, error rate) of `model` in eval mode over the whole split, summed in float64."""
    was_training = model.training
    model.eval()
    loss_sum, wrong, n = 0.0, 0, 0
    for x, y in split.batches(batch_size):
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss_sum += F.cross_entropy(logits.double(), y, reduction="sum").item()
        wrong += (logits.argmax(1) != y).sum().item()
        n += len(y)
    model.train(was_training)
    return loss_sum / n, wrong / n


@torch.inference_mode()
def logits_at(model: nn.Module, state: dict, split: Split, batch_size: int = 1000) -> torch.Tensor:
    """The model's outputs at `state` (loaded functionally; the model's own weights are untouched) over the
    whole split, in eval mode, as float64 (N × K)."""
    from torch.func import functional_call

    was_training = model.training
    model.eval()
    out = torch.cat([functional_call(model, state, (x,)).double() for x, _ in split.batches(batch_size)])
    model.train(was_training)
    return out
