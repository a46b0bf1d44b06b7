"""What a line is scored by: a loss and named metrics, each a data-set mean of per-example (or per-token) values.

An objective turns a block of predictions (α, batch, ...) — one row per point of the line — and the batch's
targets into per-α *sums* and *weights*; the engine divides them at the end, so every value is the exact mean
over the whole data set, not a mean of batch means. Built-ins, by name:

  cross_entropy     the papers' numbers (Goodfellow et al. 2015; Frankle 2020): mean cross-entropy of (batch,
                    classes) logits, top-1 error and predicted-class counts. The default, bit for bit as before.
  mse               mean over examples and outputs of (prediction − target)².
  lm_cross_entropy  causal language modelling (as GPT-2 is trained): the logits at position i are scored
                    against the label at i + 1, labels equal to −100 are ignored, and the loss is the mean over
                    every scored token of the data set; metric `error`: next-token top-1 error over those tokens.

A user loss or metric is a callable `f(prediction, target)` for ONE point of the line, returning per-example
values (shape (batch,) or (batch, ...)) or `(values, weights)` of the same shape (a mask is a 0/1 weight); the
mean is Σ values·weights / Σ weights over the data set. It runs once per α (a loop, not vmap).

Overflow: a per-example loss that is NaN at a valid state comes from logits that overflowed (inf − inf), and
counts as inf, as before; whether the *output* itself is NaN for another reason is decided by the engine
(`undefined.py`), which then reports the point as undefined.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from ..errors import LosspathError

IGNORE_INDEX = -100  # the label value lm_cross_entropy skips (PyTorch's and HuggingFace's convention)
RESERVED = ("alpha", "loss", "undefined", "undefined_reason")


class Totals:
    """Per-α sums and weights of the loss and of each metric (float64), and predicted-class counts."""

    def __init__(self, k: int, metrics: list[str], classes: int | None, device):
        def zeros():
            return torch.zeros(k, dtype=torch.float64, device=device)

        self.loss, self.loss_weight = zeros(), zeros()
        self.metrics = {name: zeros() for name in metrics}
        self.metric_weights = {name: zeros() for name in metrics}
        self.class_counts = None if classes is None else torch.zeros(k, classes, dtype=torch.long, device=device)

    def part(self, lo: int, hi: int) -> "Totals":
        """A view of α lo..hi (adding to it adds to self)."""
        view = Totals.__new__(Totals)
        view.loss, view.loss_weight = self.loss[lo:hi], self.loss_weight[lo:hi]
        view.metrics = {n: v[lo:hi] for n, v in self.metrics.items()}
        view.metric_weights = {n: v[lo:hi] for n, v in self.metric_weights.items()}
        view.class_counts = None if self.class_counts is None else self.class_counts[lo:hi]
        return view


class Objective:
    """A loss plus named metrics. `check` validates a probe's prediction and target (one sentence on mismatch)
    and returns the number of classes to count (None: no class counts); `score` adds a block to Totals."""

    name = "custom"
    metric_names: tuple[str, ...] = ()
    target_dtype: torch.dtype | None = None  # targets are converted to it (None: kept as given)

    def check(self, prediction: torch.Tensor, target) -> int | None:
        return None

    def score(self, prediction: torch.Tensor, target, totals: Totals) -> None:
        raise NotImplementedError


class CrossEntropy(Objective):
    """Mean cross-entropy of (batch, classes) logits, top-1 error and predicted-class counts."""

    name, metric_names, target_dtype = "cross_entropy", ("error",), torch.long

    def check(self, prediction, target):
        if prediction.dim() != 2 or prediction.shape[0] != target.shape[0]:
            shape = tuple(prediction.shape)
            raise LosspathError(f"The model must return (batch, classes) logits; it returned {shape}.")
        return int(prediction.shape[1])

    def score(self, logits, y, totals):
        """Per-example cross-entropy (float32, float64 for a float64 model; float64 sums; NaN from overflowed
        logits counts as inf), errors and predicted-class counts for a (alphas, batch, classes) block."""
        logits = logits if logits.dtype == torch.float64 else logits.float()
        k, b, c = logits.shape
        # classes first: the reductions over a short class axis then run as vectorized elementwise ops
        by_class = logits.permute(2, 0, 1).contiguous()
        top, pred = by_class.max(0)
        log_sum_exp = top + (by_class - top).exp_().sum(0).log_()
        loss = log_sum_exp - logits.gather(2, y.view(1, b, 1).expand(k, b, 1)).squeeze(2)
        loss = torch.nan_to_num(loss, nan=math.inf)
        totals.loss += loss.double().sum(1)
        totals.loss_weight += b
        totals.metrics["error"] += (pred != y).sum(1)
        totals.metric_weights["error"] += b
        totals.class_counts.scatter_add_(1, pred, torch.ones_like(pred))


class MeanSquaredError(Objective):
    """Mean over examples and outputs of (prediction − target)²; the target is reshaped to the prediction's
    per-example shape when their sizes agree."""

    name = "mse"

    def check(self, prediction, target):
        if not isinstance(target, torch.Tensor) or target.shape[0] != prediction.shape[0] \
                or target[0].numel() != prediction[0].numel():
            shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
            raise LosspathError(f"loss='mse' needs one target per output: the model returns "
                                f"{tuple(prediction.shape)}, the targets are {shape}.")
        return None

    def score(self, prediction, target, totals):
        k, b = prediction.shape[:2]
        p = prediction if prediction.dtype == torch.float64 else prediction.float()
        squares = (p.reshape(k, b, -1) - target.reshape(1, b, -1).to(p.dtype)).square_()
        per_example = torch.nan_to_num(squares.mean(2), nan=math.inf, posinf=math.inf)
        totals.loss += per_example.double().sum(1)
        totals.loss_weight += b


class LanguageModelCrossEntropy(Objective):
    """Causal LM: logits (batch, T, vocab) at position i against labels (batch, T) at i + 1; −100 ignored."""

    name, metric_names, target_dtype = "lm_cross_entropy", ("error",), torch.long

    def check(self, prediction, target):
        if prediction.dim() != 3 or not isinstance(target, torch.Tensor) \
                or tuple(target.shape) != tuple(prediction.shape[:2]):
            shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
            raise LosspathError(f"loss='lm_cross_entropy' needs (batch, tokens, vocab) logits and (batch, tokens) "
                                f"labels; the model returns {tuple(prediction.shape)}, the labels are {shape}.")
        return None

    def score(self, logits, labels, totals):
        logits = logits[:, :, :-1] if logits.dtype == torch.float64 else logits[:, :, :-1].float()
        labels = labels[:, 1:]
        scored = labels != IGNORE_INDEX
        safe = torch.where(scored, labels, 0).unsqueeze(0).expand(logits.shape[0], -1, -1)
        top, pred = logits.max(3)
        log_sum_exp = top + (logits - top.unsqueeze(3)).exp().sum(3).log()
        loss = torch.nan_to_num(log_sum_exp - logits.gather(3, safe.unsqueeze(3)).squeeze(3), nan=math.inf)
        weight = scored.sum()
        totals.loss += torch.where(scored, loss.double(), 0.0).sum((1, 2))
        totals.loss_weight += weight
        totals.metrics["error"] += ((pred != safe) & scored).sum((1, 2))
        totals.metric_weights["error"] += weight


class Custom(Objective):
    """A user's loss and/or extra metrics: callables f(prediction, target) for one point of the line."""

    def __init__(self, base: Objective | None, loss: Callable | None, metrics: Mapping[str, Callable]):
        self.base, self.loss_fn, self.extra = base, loss, dict(metrics)
        self.name = base.name if base is not None else getattr(loss, "__name__", "custom")
        self.metric_names = (base.metric_names if base is not None else ()) + tuple(self.extra)
        self.target_dtype = base.target_dtype if base is not None else None

    def check(self, prediction, target):
        classes = self.base.check(prediction, target) if self.base is not None else None
        fns = ([("loss", self.loss_fn)] if self.loss_fn is not None else []) + list(self.extra.items())
        for name, fn in fns:
            _weighted(fn, prediction, target, name)  # one call on the probe: shapes and types checked up front
        return classes

    def score(self, prediction, target, totals):
        if self.base is not None:
            self.base.score(prediction, target, totals)
        for i in range(prediction.shape[0]):
            if self.loss_fn is not None:
                values, weights = _weighted(self.loss_fn, prediction[i], target, "loss")
                values = torch.nan_to_num(values, nan=math.inf, posinf=math.inf)
                totals.loss[i] += (values * weights).sum()
                totals.loss_weight[i] += weights.sum()
            for name, fn in self.extra.items():
                values, weights = _weighted(fn, prediction[i], target, name)
                totals.metrics[name][i] += (values * weights).sum()
                totals.metric_weights[name][i] += weights.sum()


def _weighted(fn: Callable, prediction, target, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 (values, weights) of one call of a user's loss or metric, checked."""
    try:
        out = fn(prediction, target)
    except LosspathError:
        raise
    except Exception as e:
        raise LosspathError(f"The {name} function fails on the model's output ({type(e).__name__}: {e}).") from None
    values, weights = out if isinstance(out, tuple) and len(out) == 2 else (out, None)
    if not isinstance(values, torch.Tensor) or values.dim() == 0 or values.shape[0] != prediction.shape[0]:
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise LosspathError(f"The {name} function must return one value per example (or token), shape (batch, ...), "
                            f"not {shape}: a batch mean cannot be averaged exactly (use reduction='none').")
    values = values.double()
    if weights is None:
        return values, torch.ones_like(values)
    if not isinstance(weights, torch.Tensor) or weights.shape != values.shape:
        raise LosspathError(f"The {name} function's weights must have the values' shape {tuple(values.shape)}.")
    return values, weights.double()


BUILT_IN = {"cross_entropy": CrossEntropy, "mse": MeanSquaredError, "lm_cross_entropy": LanguageModelCrossEntropy}


def resolve_objective(loss="cross_entropy", metrics: Mapping[str, Callable] | None = None) -> Objective:
    """The Objective for `loss` (a built-in name or a callable) with extra named `metrics` (callables)."""
    metrics = dict(metrics or {})
    base = fn = None
    if isinstance(loss, str):
        if loss not in BUILT_IN:
            raise LosspathError(f"loss must be one of {', '.join(BUILT_IN)} or a callable, not {loss!r}.")
        base = BUILT_IN[loss]()
    elif callable(loss):
        fn = loss
    else:
        raise LosspathError(f"loss must be one of {', '.join(BUILT_IN)} or a callable, not {type(loss).__name__}.")
    for name, metric in metrics.items():
        if not isinstance(name, str) or not name or not callable(metric):
            raise LosspathError(f"metrics must map names to callables; {name!r} does not.")
        if name in RESERVED or (base is not None and name in base.metric_names):
            raise LosspathError(f"The metric name {name!r} is taken; choose another.")
    if base is not None and not metrics:
        return base
    return Custom(base, fn, metrics)


def prediction(output, select=None) -> torch.Tensor:
    """The tensor a model's output is scored by: `select(output)` if callable, output[select] or
    getattr(output, select) if a name; else the output itself if a tensor, its `.logits` (HuggingFace
    ModelOutput) or ["logits"], or the first element of a tuple or list."""
    if callable(select):
        out = select(output)
    elif isinstance(select, str):
        out = output[select] if isinstance(output, Mapping) and select in output else getattr(output, select, None)
    elif isinstance(output, torch.Tensor):
        out = output
    elif isinstance(getattr(output, "logits", None), torch.Tensor):
        out = output.logits
    elif isinstance(output, Mapping):
        out = output.get("logits")
    elif isinstance(output, (tuple, list)) and output:
        out = output[0]
    else:
        out = None
    if not isinstance(out, torch.Tensor):
        keys = f" (keys {', '.join(map(str, output))})" if isinstance(output, Mapping) else ""
        raise LosspathError(f"Cannot find the prediction tensor in the model's output, a {type(output).__name__}"
                            f"{keys}; pass output= a key or a function that picks it.")
    return out
