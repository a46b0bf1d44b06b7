"""Plain evaluation of one network on one split (mean cross-entropy and top-1 error, logits), and of a run's
checkpoints with the results kept in the run store (`CheckpointEvaluator`)."""
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


class CheckpointEvaluator:
    """Loss, error, logits and predictions of network states on the splits of `data` — the one evaluator of
    stored checkpoints that studies share. `checkpoint(run, step, split)` evaluates a checkpoint once: its
    (loss, error) is kept in memory and in the run store (`Run.eval_cache`), so a rerun reads it back."""

    def __init__(self, model: nn.Module, data, device="cpu"):
        self.data, self.device = data, device
        self.model = model.to(device)
        self.names = [k for k, _ in self.model.named_parameters()]
        self._cache: dict = {}

    def state(self, state: dict, split: str = "train") -> tuple[float, float]:
        """(mean cross-entropy, error) of `state` over the whole split."""
        self.model.load_state_dict(state)
        return evaluate(self.model, self.data.split(split), device=self.device)

    def checkpoint(self, run, step: int, split: str = "train") -> tuple[float, float]:
        """`state(...)` of checkpoint `step` of `run`, evaluated once (see the class)."""
        from ..files import write_json

        key = (run.dir.name, step, split)
        if key not in self._cache:
            path = run.eval_cache(step, self.data.name, split)
            self._cache[key] = _read_scores(path)
            if self._cache[key] is None:
                self._cache[key] = self.state(run.load_checkpoint(step), split)
                write_json(path, dict(loss=self._cache[key][0], error=self._cache[key][1]))
        return self._cache[key]

    def logits(self, state: dict, split) -> torch.Tensor:
        """`logits_at` of `state` on `split` (a Split, or a split's name)."""
        return logits_at(self.model, state, self.data.split(split) if isinstance(split, str) else split)

    @torch.inference_mode()
    def predictions(self, state: dict, split, batch_size: int = 1000):
        """The predicted class of every example of `split` (a Split), as numpy."""
        self.model.load_state_dict(state)
        self.model.eval()
        return torch.cat([self.model(x.to(self.device)).argmax(1).cpu() for x, _ in split.batches(batch_size)]).numpy()


def _read_scores(path) -> tuple[float, float] | None:
    """A cached (loss, error), or None when there is none or it does not read back as written (with a notice)."""
    from ..files import DamagedFile, notice, read_json

    if not path.is_file():
        return None
    try:
        value = read_json(path)
        return float(value["loss"]), float(value["error"])
    except (DamagedFile, KeyError, TypeError, ValueError) as e:
        notice(f"cached evaluation {path} is damaged ({getattr(e, 'reason', e)}); evaluating it again.")
        return None
