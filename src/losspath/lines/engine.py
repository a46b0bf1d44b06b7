"""`evaluate_line`: loss, error and predicted classes at many points θ(α) of the line between two states.

The experiment of Goodfellow et al. 2015 and Frankle 2020 (§2: "we linearly interpolate using 100 evenly
spaced points"), with the bias schemes of Wang et al. 2023. Many α are evaluated in one pass: the states of a
chunk of α are stacked and the model runs under `torch.func.vmap(functional_call(...))` (`stacked.py`), so
each layer becomes one batched matmul over α. The first layer runs twice per batch instead of once per α
(`first_layer.py`); on the CPU a Linear → ReLU → Linear input block costs per ReLU switch, not per α
(`relu_pair.py`); BatchNorm statistics can be re-estimated at every α (`batchnorm.py`).

Memory and chunking: the α are split into *state chunks* (their stacked tensors held at once, sized so that
stacks + activations fit `max_memory`), and each batch of data runs through a state chunk in *calls* of a few
α at a time, sized so one call's activations stay near WORKING_SET bytes: larger calls stream their
activations through main memory and are slower, not faster. Activation size is measured by a probe forward.
"""
from __future__ import annotations

import copy
import math
import sys

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from ..errors import LosspathError
from .data_source import DataSource
from .first_layer import find_first_layer
from .relu_pair import find_output_relu, find_relu_pair
from .result import LineResult
from .schemes import layer_depths, line_rules
from .stacked import StackedLine
from .states import State, check_endpoints, check_finite, resolve_state

EVAL_BATCH = 256  # evaluation batch size when we choose it (tensors and Splits, batch_size=None)
WORKING_SET = 64 * 2**20  # activation bytes one vmapped call aims at
BN_BATCH_SIZE = 128  # training batch size for recomputed BN statistics, unless batch_size is given
MIN_PAIR_ALPHAS = 5  # the ReLU-pair shortcut costs four α's worth of matrix products per batch
PAIR_TABLE = 5 * 2**19  # bytes of second-layer outputs (all α of a batch) the ReLU-pair shortcut aims at


def evaluate_line(model: nn.Module, start, end, data, *, points: int = 100, alphas=None, scheme="all",
                  batchnorm: str = "interpolate", train_data=None, batch_size: int | None = None, device=None,
                  progress: bool = True, hold: str = "end", bn_batches: int | None = None,
                  max_memory: int = 2**30, first_layer_shortcut: bool = True, relu_shortcut: bool = True
                  ) -> LineResult:
    """Evaluate mean cross-entropy, top-1 error and predicted-class counts at θ(α) for every α.

    model      any nn.Module with the architecture; its own weights are not used (a copy is run).
    start/end  state dicts, .safetensors/.pt paths, "RUN_DIR@STEP" strings or (run_dir, step) tuples.
    data       (inputs, targets) tensors, a DataLoader of (inputs, targets), or a losspath Split.
    alphas     the α values (any reals: α < 0 or > 1 extrapolate); default np.linspace(0, 1, points).
    scheme     "all", "weights", "biases", "homogeneous" or a list of name prefixes (see lines.schemes);
               held tensors sit at `hold` ("start" or "end").
    batchnorm  "interpolate" running statistics move with α; "recompute" re-estimates them at each α from
               `train_data` (first `bn_batches` batches, batch_size or 128 per batch); "start"/"end" keep one
               endpoint's. Integer buffers always take the end's value.
    batch_size evaluation batch size for tensors and Splits (default 256, fewer if the activations of one α
               would exceed max_memory); a DataLoader keeps its own.
    max_memory bytes for stacked states + activations (estimated by a probe forward); sets how many α share
               a pass over the data.
    first_layer_shortcut  evaluate the first Linear/Conv layer once per endpoint instead of once per α.
    relu_shortcut  on the CPU, with the first-layer shortcut, evaluate a Linear → ReLU → Linear input block per
               ReLU switch instead of per α (lines.relu_pair; used from 5 α on).
    """
    alphas = _alpha_grid(points, alphas)
    for name, value in (("batch_size", batch_size), ("bn_batches", bn_batches), ("max_memory", max_memory)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise LosspathError(f"{name} must be a positive integer, not {value!r}.")
    if batchnorm == "recompute" and train_data is None:
        raise LosspathError("batchnorm='recompute' needs train_data to re-estimate the BatchNorm statistics.")
    start_state, end_state = resolve_state(start, "start"), resolve_state(end, "end")
    check_endpoints(model, start_state, end_state)
    check_finite(start_state, "start")
    check_finite(end_state, "end")

    device = torch.device(device) if device is not None else _model_device(model)
    net = copy.deepcopy(model).to(device).eval()
    reference = net.state_dict()
    start_state = {k: v.to(device=device, dtype=reference[k].dtype) for k, v in start_state.items()}
    end_state = {k: v.to(device=device, dtype=reference[k].dtype) for k, v in end_state.items()}
    eval_data = DataSource(data, device, "data")
    train = DataSource(train_data, device, "training data") if batchnorm == "recompute" else None

    first_x, _ = eval_data.first(8 if eval_data.chooses_batch_size else None)
    probe_x = first_x[:8]
    input_bytes, act_bytes, classes = _probe(net, end_state, probe_x)
    depths = layer_depths(net, probe_x, end_state) if scheme == "homogeneous" else None
    rules = line_rules(list(reference), reference, scheme, hold=hold, batchnorm=batchnorm, depths=depths)
    first = find_first_layer(net, probe_x, end_state) if first_layer_shortcut else None
    second = out_relu = None
    if relu_shortcut and device.type == "cpu" and len(alphas) >= MIN_PAIR_ALPHAS:
        second = find_relu_pair(net, probe_x, end_state, first, rules)
    if second is not None:
        out_relu = find_output_relu(net, probe_x, end_state, second)
        pair_row_bytes = net.get_submodule(second).out_features * end_state[f"{second}.weight"].element_size()
    line = StackedLine(net, start_state, end_state, rules, first, second, out_relu)

    n = len(eval_data)
    eval_bs = batch_size or len(first_x)
    if batch_size is None and eval_data.chooses_batch_size:  # EVAL_BATCH, fewer if one α would overflow
        eval_bs = int(min(max(n, 1), EVAL_BATCH, max(1, max_memory // (input_bytes + act_bytes))))
        if second is not None:  # one call per batch, its second-layer outputs for every α in cache
            eval_bs = min(eval_bs, max(16, PAIR_TABLE // (len(alphas) * pair_row_bytes)))
    train_bs = batch_size or BN_BATCH_SIZE
    widest = max(eval_bs, train_bs if train is not None else 0)
    chunk, per_call = _plan(len(alphas), line.bytes_per_alpha(), widest * input_bytes, widest * act_bytes,
                            max_memory)

    loss, errors = np.zeros(len(alphas)), np.zeros(len(alphas), dtype=np.int64)
    counts = np.zeros((len(alphas), classes), dtype=np.int64)
    bar = _progress(len(alphas), progress)
    with torch.inference_mode():
        for lo in range(0, len(alphas), chunk):
            a = torch.tensor(alphas[lo : lo + chunk], dtype=torch.float64, device=device)
            stacked, fixed = line.states(a)
            if train is not None:
                stacked.update(line.recompute(stacked, fixed, train.batches(train_bs, bn_batches), len(a), per_call))
            sums, examples = _evaluate_chunk(line, stacked, fixed, len(a), eval_data.batches(eval_bs), per_call,
                                             classes, lambda k: bar.update(len(a) * k / n if n else 0))
            loss[lo : lo + chunk] = (sums[0] / max(examples, 1)).cpu().numpy()
            errors[lo : lo + chunk] = sums[1].cpu().numpy()
            counts[lo : lo + chunk] = sums[2].cpu().numpy()
            if not n:
                bar.update(len(a))
    bar.close()

    from ..metrics import distance, relative_distance

    names = [k for k, _ in model.named_parameters()]
    return LineResult(
        alphas=alphas, loss=loss, error=errors / max(examples, 1), class_counts=counts, num_examples=examples,
        scheme=scheme if isinstance(scheme, str) else ",".join(scheme), batchnorm=batchnorm,
        distance=distance(start_state, end_state, names),
        relative_distance=relative_distance(start_state, end_state, names),
        info={"chunk": chunk, "per_call": per_call, "batch_size": eval_bs, "first_layer": first,
              "relu_pair": second, "relu_after_pair": out_relu, "vectorized": line.vectorize},
    )


def _alpha_grid(points: int, alphas) -> np.ndarray:
    if alphas is None:
        if not isinstance(points, int) or points < 1:
            raise LosspathError(f"points must be a positive integer, not {points!r}.")
        return np.linspace(0.0, 1.0, points)
    out = np.asarray(alphas, dtype=np.float64).reshape(-1)
    if out.size == 0 or not np.all(np.isfinite(out)):
        raise LosspathError("alphas must be a non-empty list of finite numbers.")
    return out


def _model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _progress(total: int, progress: bool):
    """A bar over the α (fractional while a chunk of α works through the data); off without a terminal."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="line", unit="α", disable=not progress or not sys.stderr.isatty(),
                bar_format="{l_bar}{bar}| {n:.0f}/{total} α [{elapsed}<{remaining}]")


def _probe(net: nn.Module, state: State, x: torch.Tensor) -> tuple[int, int, int]:
    """Run one small batch and check the output is (batch, classes) logits. Returns bytes per example of the
    input, bytes per example and α of the activations one forward holds at once (three times the largest
    leaf-module output: a layer's input, its output and a residual branch alive together), and the classes."""
    largest = [0]

    def measure(module, args, out):
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                largest[0] = max(largest[0], t.numel() * t.element_size())

    handles = [m.register_forward_hook(measure) for m in net.modules() if not any(True for _ in m.children())]
    try:
        with torch.inference_mode():
            out = functional_call(net, state, (x,))
    except LosspathError:
        raise
    except Exception as e:
        raise LosspathError(f"The model's forward pass fails on a batch of the data ({type(e).__name__}: {e}).") \
            from None
    finally:
        for h in handles:
            h.remove()
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise LosspathError(f"The model must return (batch, classes) logits; it returned {shape}.")
    largest = max(largest[0], out.numel() * out.element_size())
    per_example = [max(1, math.ceil(b / x.shape[0])) for b in (x.numel() * x.element_size(), 3 * largest)]
    return per_example[0], per_example[1], int(out.shape[1])


def _evaluate_chunk(line: StackedLine, stacked: State, fixed: State, k: int, batches, per_call: int, classes: int,
                    advance) -> tuple[tuple[torch.Tensor, ...], int]:
    """Loss sums (float64), error counts and class counts for the k alphas of `stacked`; each batch runs
    through them in vmapped calls of `per_call` α."""
    device = line.device
    sums = (torch.zeros(k, dtype=torch.float64, device=device), torch.zeros(k, dtype=torch.long, device=device),
            torch.zeros(k, classes, dtype=torch.long, device=device))
    examples = 0
    for x, y in batches:
        line.new_batch()
        for c0 in range(0, k, per_call):
            c1 = min(c0 + per_call, k)
            part = {name: v[c0:c1] for name, v in stacked.items()}
            _score(line.forward(part, fixed, x, c1 - c0), y, [s[c0:c1] for s in sums])
        examples += len(y)
        advance(len(y))
    return sums, examples


def _plan(n_alphas: int, param_bytes: int, input_bytes: int, act_bytes: int, max_memory: int) -> tuple[int, int]:
    """(α per state chunk, α per vmapped call). `input_bytes`/`act_bytes` are per batch (act_bytes per α).

    Calls hold about WORKING_SET bytes of activations (at least one α); the state chunk takes as many α as the
    rest of `max_memory` holds, so usually every α shares one pass over the data.
    """
    per_call = int(min(n_alphas, max(1, WORKING_SET // act_bytes), max(1, max_memory // (param_bytes + act_bytes))))
    room = max_memory - input_bytes - per_call * act_bytes
    chunk = int(min(n_alphas, max(per_call, room // max(param_bytes, 1))))
    chunk = math.ceil(n_alphas / math.ceil(n_alphas / chunk))  # equal chunks
    per_call = math.ceil(chunk / math.ceil(chunk / min(per_call, chunk)))
    return chunk, per_call


def _score(logits: torch.Tensor, y: torch.Tensor, sums: list) -> None:
    """Add per-example cross-entropy (float32, float64 for a float64 model; float64 sums; NaN from overflowed
    logits counts as inf), errors and predicted-class counts for a (alphas, batch, classes) block of logits."""
    logits = logits if logits.dtype == torch.float64 else logits.float()
    k, b, c = logits.shape
    # classes first: the reductions over a short class axis then run as vectorized elementwise ops
    by_class = logits.permute(2, 0, 1).contiguous()
    top, pred = by_class.max(0)
    log_sum_exp = top + (by_class - top).exp_().sum(0).log_()
    loss = log_sum_exp - logits.gather(2, y.view(1, b, 1).expand(k, b, 1)).squeeze(2)
    loss = torch.nan_to_num(loss, nan=math.inf)
    sums[0] += loss.double().sum(1)
    sums[1] += (pred != y).sum(1)
    sums[2].scatter_add_(1, pred, torch.ones_like(pred))
