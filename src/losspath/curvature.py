"""Curvature of the mean loss at a network state: sharpness (the top Hessian eigenvalue) and the Hessian trace,
at one state, along a line and at a run's checkpoints.

The Hessian is of L(θ) = mean over a fixed subset of the data (its first `examples` examples) of the per-example
loss, with respect to the model's parameters; buffers (BatchNorm running statistics) are held at the state's
values and the model runs in eval mode, so BatchNorm normalizes with the point's own (interpolated or recomputed)
statistics and L is a deterministic function of the parameters. Nothing is ever formed densely: Hessian-vector
products H·v come from forward-over-reverse differentiation, `torch.func.jvp(torch.func.grad(L), (θ,), (v,))`
(Pearlmutter 1994), summed over batches with weights batch size / examples.

  sharpness      λ_max(H) by Lanczos with full reorthogonalization (Golub & Van Loan, §10.1), from a seeded
                 Gaussian start vector. It stops when the top Ritz pair (λ, y) has residual ‖H·y − λ·y‖ =
                 β_k·|s_k| ≤ tol·|λ| (so an eigenvalue of H lies within tol·|λ| of λ; default tol = 1e-3), or after
                 `iterations` products. Ritz values converge to the extreme eigenvalues first, and the largest
                 algebraic one (not the largest in magnitude) is returned — as the "sharpness" of Cohen et al.
                 2021 and Keskar et al. 2017, and as PyHessian's power iteration finds near a minimum.
  hessian_trace  Hutchinson's estimator (Hutchinson 1990; Avron & Toledo 2011): mean of zᵀHz over `samples`
                 seeded Rademacher vectors z (unbiased; its standard error is returned alongside).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jvp

from .errors import LosspathError
from .keys import tensor_name
from .lines.data_source import DataSource
from .lines.stacked import fill_tied
from .lines.states import check_finite, interpolated_state, resolve_state

EXAMPLES = 1000  # the fixed subset: the data's first examples
BATCH = 500  # examples per Hessian-vector product pass


@dataclass
class Curvature:
    """The result of `sharpness_details`: λ_max, its Lanczos residual bound and the products used."""

    sharpness: float
    residual: float
    iterations: int
    converged: bool


class _MeanLoss:
    """L(θ) on a fixed subset of the data, as a function of the parameter dict, and its H·v products."""

    def __init__(self, model: nn.Module, state, data, *, examples: int, batch_size: int, loss, device, output):
        if not isinstance(examples, int) or examples < 1:
            raise LosspathError(f"examples must be a positive integer, not {examples!r}.")
        state = fill_tied(model, resolve_state(state, "state"))
        check_finite(state, "state")
        device = torch.device(device) if device is not None else torch.device("cpu")
        self.net = copy.deepcopy(model).to(device).eval()
        reference = self.net.state_dict()
        missing = [k for k in reference if k not in state]
        if missing:
            raise LosspathError(f"The state lacks {', '.join(missing[:5])} of the model.")
        names = {n for n, _ in self.net.named_parameters()}
        self.params = {k: state[k].to(device=device, dtype=reference[k].dtype) for k in reference if k in names}
        self.buffers = {k: state[k].to(device=device, dtype=reference[k].dtype) for k in reference
                        if k not in names}
        self.loss, self.output = _loss_function(loss), output
        source = DataSource(data, device, "data", target_dtype=None)
        self.batches, count = [], 0
        for batch in source.batches(min(batch_size, examples)):
            take = min(batch.size, examples - count)
            cut = [t[:take] if isinstance(t, torch.Tensor) else t for t in batch.inputs.args]
            keywords = {k: t[:take] if isinstance(t, torch.Tensor) else t for k, t in batch.inputs.kwargs.items()}
            self.batches.append(((cut, keywords), batch.target[:take], take))
            count += take
            if count >= examples:
                break
        if count == 0:
            raise LosspathError("The data for the curvature is empty.")
        self.examples = count
        self.dim = sum(p.numel() for p in self.params.values())

    def _batch_loss(self, params, inputs, target):
        args, kwargs = inputs
        out = functional_call(self.net, (params, self.buffers), tuple(args), kwargs)
        if self.output is not None:
            out = self.output(out)
        elif not isinstance(out, torch.Tensor):
            out = out.logits if hasattr(out, "logits") else out[0]
        return self.loss(out, target)

    def net_device(self) -> torch.device:
        return next(iter(self.params.values())).device if self.params else torch.device("cpu")

    def value(self) -> float:
        with torch.no_grad():
            return sum(float(self._batch_loss(self.params, i, t)) * n for i, t, n in self.batches) / self.examples

    def hvp(self, vector: torch.Tensor) -> torch.Tensor:
        """H·v for a flat float64 vector v (parameter order of the model), as a flat float64 vector."""
        tangent = self._unflatten(vector)
        total = None
        for inputs, target, n in self.batches:
            def f(params, inputs=inputs, target=target):
                return self._batch_loss(params, inputs, target)

            _, product = jvp(grad(f), (self.params,), (tangent,))
            flat = torch.cat([product[k].reshape(-1).double() for k in self.params]) * (n / self.examples)
            total = flat if total is None else total + flat
        return total

    def _unflatten(self, vector: torch.Tensor) -> dict:
        out, at = {}, 0
        for k, p in self.params.items():
            out[k] = vector[at : at + p.numel()].view(p.shape).to(p.dtype)
            at += p.numel()
        return out


def _loss_function(loss):
    if callable(loss):
        return lambda out, target: loss(out, target).mean()
    if loss == "cross_entropy":
        return lambda out, target: F.cross_entropy(out, target.long())
    if loss == "mse":
        return lambda out, target: F.mse_loss(out, target.to(out.dtype))
    raise LosspathError(f"loss must be 'cross_entropy', 'mse' or a callable f(prediction, target), not {loss!r}.")


def lanczos_top(hvp, dim: int, *, iterations: int, tol: float, seed: int, dtype=torch.float64,
                device=None) -> Curvature:
    """λ_max of the symmetric operator `hvp` (flat float64 vectors of length dim) by Lanczos with full
    reorthogonalization; see the module docstring for the stopping rule."""
    if not isinstance(iterations, int) or iterations < 1:
        raise LosspathError(f"iterations must be a positive integer, not {iterations!r}.")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise LosspathError(f"tol must be a positive number, not {tol!r}.")
    generator = torch.Generator().manual_seed(int(seed))
    q = torch.randn(dim, generator=generator, dtype=dtype).to(device)
    basis = [q / q.norm()]
    alphas, betas = [], []
    value, residual = float("nan"), float("inf")
    for k in range(min(iterations, dim)):
        w = hvp(basis[-1])
        alphas.append(float(basis[-1] @ w))
        stack = torch.stack(basis)
        for _ in range(2):  # full reorthogonalization, twice ("twice is enough", Parlett)
            w = w - stack.t() @ (stack @ w)
        beta = float(w.norm())
        tri = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        ritz, vectors = np.linalg.eigh(tri)
        value, residual = float(ritz[-1]), float(abs(beta * vectors[-1, -1]))
        if residual <= tol * abs(value) or beta <= 1e-12 * max(1.0, abs(value)):
            return Curvature(value, residual, k + 1, True)
        betas.append(beta)
        basis.append(w / beta)
    return Curvature(value, residual, min(iterations, dim), dim <= iterations)


def sharpness_details(model: nn.Module, state, data, *, examples: int = EXAMPLES, batch_size: int = BATCH,
                      iterations: int = 100, tol: float = 1e-3, seed: int = 0, loss="cross_entropy", device=None,
                      output=None) -> Curvature:
    """`sharpness` with its Lanczos residual, product count and whether it met `tol`."""
    mean_loss = _MeanLoss(model, state, data, examples=examples, batch_size=batch_size, loss=loss, device=device,
                          output=output)
    return lanczos_top(mean_loss.hvp, mean_loss.dim, iterations=iterations, tol=tol, seed=seed,
                       device=mean_loss.net_device())


def sharpness(model: nn.Module, state, data, **options) -> float:
    """The top eigenvalue of the Hessian of the mean loss at `state` on the data's first `examples` examples
    (default 1000), BatchNorm in eval mode at the state's statistics.

    state    a state dict, checkpoint path or "RUN_DIR@STEP". data: as for `evaluate_line` (tensors, a Split,
             a DataLoader). loss: "cross_entropy", "mse" or f(prediction, target) → per-example values.
    options  examples, batch_size (500), iterations (at most 100 Hessian-vector products), tol (1e-3: relative
             Lanczos residual), seed (0: the start vector), device, output (picks the prediction from the
             model's output).
    """
    return sharpness_details(model, state, data, **options).sharpness


def hessian_trace(model: nn.Module, state, data, *, samples: int = 100, seed: int = 0, examples: int = EXAMPLES,
                  batch_size: int = BATCH, loss="cross_entropy", device=None, output=None) -> tuple[float, float]:
    """(trace, standard error): Hutchinson's estimate of tr(H) from `samples` seeded Rademacher vectors."""
    if not isinstance(samples, int) or samples < 1:
        raise LosspathError(f"samples must be a positive integer, not {samples!r}.")
    mean_loss = _MeanLoss(model, state, data, examples=examples, batch_size=batch_size, loss=loss, device=device,
                          output=output)
    values = [float(z @ mean_loss.hvp(z)) for z in (z.to(mean_loss.net_device()) for z in rademacher(mean_loss.dim,
                                                                                          samples, seed))]
    spread = float(np.std(values, ddof=1)) / math.sqrt(samples) if samples > 1 else float("nan")
    return float(np.mean(values)), spread


def rademacher(dim: int, samples: int, seed: int):
    """The seeded ±1 vectors (float64) `hessian_trace` uses, in order."""
    generator = torch.Generator().manual_seed(int(seed))
    for _ in range(samples):
        yield torch.randint(0, 2, (dim,), generator=generator).double() * 2 - 1



def sharpness_along_line(model: nn.Module, start, end, data, *, alphas=None, points: int = 11,
                         batchnorm: str = "interpolate", train_data=None, bn_batches: int | None = None,
                         trace: bool = False, trace_samples: int = 20, progress: bool = True, **options):
    """Sharpness (and with `trace`, Hutchinson's trace) at θ(α) = (1 − α)·start + α·end for each α (default
    `points` evenly from 0 to 1): a DataFrame with columns alpha, sharpness, residual, iterations (trace,
    trace_se). BatchNorm statistics: "interpolate" (they move with α), "start"/"end" (held), or "recompute"
    (re-estimated at each α from `train_data`, torch's momentum=None average over its first `bn_batches`
    batches of 128). A point with a negative interpolated variance is undefined: NaN. `options` go to
    `sharpness` (examples, iterations, tol, seed, loss, device, output)."""
    import pandas as pd

    alphas = np.linspace(0.0, 1.0, points) if alphas is None else np.asarray(alphas, dtype=np.float64).reshape(-1)
    if alphas.size == 0 or not np.all(np.isfinite(alphas)):
        raise LosspathError("alphas must be a non-empty list of finite numbers.")
    if batchnorm == "recompute" and train_data is None:
        raise LosspathError("batchnorm='recompute' needs train_data to re-estimate the BatchNorm statistics.")
    start, end = resolve_state(start, "start"), resolve_state(end, "end")
    rows = []
    for alpha in _bar(alphas, progress):
        state = interpolated_state(start, end, float(alpha), batchnorm="interpolate" if batchnorm == "recompute"
                                   else batchnorm)
        if batchnorm == "recompute":
            state = recompute_batchnorm(model, state, train_data, bn_batches)
        rows.append({"alpha": float(alpha), **_at(model, state, data, trace, trace_samples, options)})
    return pd.DataFrame(rows)


def sharpness_along_run(run_dir, data, *, steps=None, trace: bool = False, trace_samples: int = 20,
                        progress: bool = True, data_root=None, **options):
    """Sharpness (and trace) at each saved checkpoint of a run (or the given `steps`): a DataFrame with columns
    step, sharpness, residual, iterations (trace, trace_se). The run's own network; `data` as for `sharpness`."""
    import pandas as pd

    from .data import load_dataset
    from .store import Run
    from .training import model_for

    run = Run.open(run_dir)
    model = model_for(run.hparams, load_dataset(run.hparams.dataset, data_root))
    steps = run.saved_steps() if steps is None else [run.resolve_step(s) for s in steps]
    rows = []
    for step in _bar(steps, progress):
        rows.append({"step": step, **_at(model, run.load_checkpoint(step), data, trace, trace_samples, options)})
    return pd.DataFrame(rows)


def _at(model, state, data, trace: bool, trace_samples: int, options: dict) -> dict:
    if any(tensor_name(k) == "running_var" and bool((v < 0).any()) for k, v in state.items()):
        out = {"sharpness": float("nan"), "residual": float("nan"), "iterations": 0}
        return out | ({"trace": float("nan"), "trace_se": float("nan")} if trace else {})
    found = sharpness_details(model, state, data, **options)
    out = {"sharpness": found.sharpness, "residual": found.residual, "iterations": found.iterations}
    if trace:
        keep = {k: v for k, v in options.items() if k not in ("iterations", "tol")}
        out["trace"], out["trace_se"] = hessian_trace(model, state, data, samples=trace_samples, **keep)
    return out


def recompute_batchnorm(model: nn.Module, state, train_data, batches: int | None = None,
                        batch_size: int = 128) -> dict:
    """`state` with every BatchNorm's running statistics re-estimated on `train_data` (reset, momentum=None:
    torch's exact average over the first `batches` batches; only the BatchNorms in train mode)."""
    net = copy.deepcopy(model).cpu()
    net.load_state_dict(resolve_state(state, "state"))
    net.eval()
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    source = DataSource(train_data, torch.device("cpu"), "training data", target_dtype=None, needs_target=False)
    with torch.no_grad():
        for i, batch in enumerate(source.batches(batch_size)):
            if batches is not None and i >= batches:
                break
            net(*batch.inputs.args, **batch.inputs.kwargs)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _bar(items, progress: bool):
    """A progress bar over the points (each point: up to `iterations` Hessian-vector products)."""
    import sys

    from tqdm.auto import tqdm

    return tqdm(items, desc="sharpness", unit="pt", disable=not progress or not sys.stderr.isatty())
