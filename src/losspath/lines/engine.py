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
activations through main memory and are slower, not faster (on a GPU, GPU_WORKING_SET: larger calls keep it
busy). Activation size is measured by a probe forward.
"""
from __future__ import annotations

import copy
import functools
import math
import sys

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from ..compute_options import DEFAULT, ComputeOptions
from ..errors import LosspathError
from ..keys import State
from .data_source import Batch, DataSource, head
from .first_layer import find_first_layer
from .objectives import Totals, prediction, resolve_objective
from .relu_pair import find_output_relu, find_relu_pair
from .result import LineResult
from .schemes import DEPTH_SCHEMES, layer_depths, line_rules
from .stacked import StackedLine, check_tied, fill_tied, tied_aliases
from .states import check_endpoints, check_finite, resolve_state
from .undefined import NAN_OUTPUT, Float64Check, negative_variances

EVAL_BATCH = 256  # evaluation batch size when we choose it (tensors and Splits, batch_size=None)
WORKING_SET = 64 * 2**20  # activation bytes one vmapped call aims at (CPU: the caches)
GPU_WORKING_SET = 512 * 2**20  # the same on a GPU, where larger calls keep it busy (max_memory still bounds them)
BN_BATCH_SIZE = 128  # training batch size for recomputed BN statistics, unless batch_size is given
MIN_PAIR_ALPHAS = 5  # the ReLU-pair shortcut costs four α's worth of matrix products per batch
PAIR_TABLE = 5 * 2**19  # bytes of second-layer outputs (all α of a batch) the ReLU-pair shortcut aims at


def evaluate_line(model: nn.Module, start, end, data, *, points: int = 100, alphas=None, scheme="all",
                  batchnorm: str = "interpolate", train_data=None, batch_size: int | None = None, device=None,
                  progress: bool = True, hold: str = "end", bn_batches: int | None = None,
                  max_memory: int = 2**30, first_layer_shortcut: bool = True, relu_shortcut: bool = True,
                  loss="cross_entropy", metrics=None, target_key: str = "labels", output=None,
                  vectorize: bool = True, options: ComputeOptions = DEFAULT) -> LineResult:
    """Evaluate the loss and metrics (default: mean cross-entropy, top-1 error, predicted-class counts) at θ(α)
    for every α.

    model      any nn.Module with the architecture; its own weights are not used (a copy is run).
    start/end  state dicts, .safetensors/.pt paths, "RUN_DIR@STEP" strings or (run_dir, step) tuples.
    data       (inputs, targets) tensors, a tuple of input tensors with the targets last, a dict of tensors
               (HuggingFace style, targets under `target_key`), a DataLoader of such batches, or a losspath
               Split (lines.data_source).
    alphas     the α values (any reals: α < 0 or > 1 extrapolate); default np.linspace(0, 1, points).
    scheme     "all", "weights", "biases", "homogeneous", "homogeneous_output" or a list of name prefixes
               (see lines.schemes);
               held tensors sit at `hold` ("start" or "end"). LayerNorm/GroupNorm parameters move like weights.
    batchnorm  "interpolate" running statistics move with α; "recompute" re-estimates them at each α from
               `train_data` (first `bn_batches` batches, batch_size or 128 per batch); "start"/"end" keep one
               endpoint's. Integer buffers always take the end's value.
    loss       "cross_entropy" (default), "mse", "lm_cross_entropy" or a callable f(prediction, target) giving
               per-example values or (values, weights); metrics: {name: such a callable}, extra columns
               (lines.objectives). Means are over the whole data set.
    output     how to find the prediction in the model's output: None (a tensor, `.logits`, ["logits"] or the
               first element of a tuple), a key/attribute name, or a callable.
    batch_size evaluation batch size for tensors and Splits (default 256, fewer if the activations of one α
               would exceed max_memory); a DataLoader keeps its own.
    max_memory bytes for stacked states + activations (estimated by a probe forward); sets how many α share
               a pass over the data.
    first_layer_shortcut  evaluate the first Linear/Conv layer once per endpoint instead of once per α.
    relu_shortcut  on the CPU, with the first-layer shortcut, evaluate a Linear → ReLU → Linear input block per
               ReLU switch instead of per α (lines.relu_pair; used from 5 α on). Both shortcuts apply only to a
               model that takes one input tensor and returns a tensor.
    vectorize  False: evaluate one α at a time (what a model vmap cannot run gets anyway).
    options    TF32, bf16 autocast or channels_last inputs (compute_options; default exact float32); bf16 turns
               the ReLU-pair shortcut off (it is an exact float32 kernel). Recorded in `info["compute"]`.

    Points where θ(α) is not a valid network (negative BatchNorm variance) or the output is NaN are undefined:
    NaN loss and metrics and a reason in `undefined_reason` (lines.undefined). `info["path"]` says whether the
    α ran vectorized or one at a time.
    """
    alphas = _alpha_grid(points, alphas)
    for name, value in (("batch_size", batch_size), ("bn_batches", bn_batches), ("max_memory", max_memory)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise LosspathError(f"{name} must be a positive integer, not {value!r}.")
    if batchnorm == "recompute" and train_data is None:
        raise LosspathError("batchnorm='recompute' needs train_data to re-estimate the BatchNorm statistics.")
    objective = resolve_objective(loss, metrics)
    start_state, end_state = (fill_tied(model, resolve_state(ref, which)) for ref, which in ((start, "start"),
                                                                                          (end, "end")))
    check_endpoints(model, start_state, end_state)
    check_finite(start_state, "start")
    check_finite(end_state, "end")

    device = torch.device(device) if device is not None else _model_device(model)
    net = copy.deepcopy(model).to(device).eval()
    options.check_model(net, type(model).__name__, device, line=True)
    reference = net.state_dict()
    aliases = tied_aliases(net)  # a tied tensor is passed once, under its first name
    check_tied(net, start_state, "start")
    check_tied(net, end_state, "end")
    start_state, end_state = ({k: v.to(device=device, dtype=reference[k].dtype) for k, v in state.items()
                               if k not in aliases} for state in (start_state, end_state))
    eval_data = DataSource(data, device, "data", target_key=target_key, target_dtype=objective.target_dtype,
                           channels_last=options.channels_last)
    train = DataSource(train_data, device, "training data", target_key=target_key, target_dtype=None,
                       needs_target=False, channels_last=options.channels_last) if batchnorm == "recompute" else None

    first_batch = eval_data.first(8 if eval_data.chooses_batch_size else None)
    probe = head(first_batch, 8)
    extract = functools.partial(prediction, select=output)
    input_bytes, act_bytes, classes, plain_output = _probe(net, end_state, probe, objective, extract)
    x = probe.inputs.single_tensor() if plain_output and output is None else None
    depths = layer_depths(net, probe.inputs, end_state) if scheme in DEPTH_SCHEMES else None
    rules = line_rules([k for k in reference if k not in aliases], reference, scheme, hold=hold, batchnorm=batchnorm,
                       depths=depths)
    first = find_first_layer(net, x, end_state) if first_layer_shortcut and x is not None else None
    second = out_relu = None
    if relu_shortcut and not options.bf16 and device.type == "cpu" and len(alphas) >= MIN_PAIR_ALPHAS:
        second = find_relu_pair(net, x, end_state, first, rules)
    if second is not None:
        out_relu = find_output_relu(net, x, end_state, second)
        pair_row_bytes = net.get_submodule(second).out_features * end_state[f"{second}.weight"].element_size()
    line = StackedLine(net, start_state, end_state, rules, first, second, out_relu, extract)
    if vectorize and len(alphas) > 1:
        try:
            line.check_vmap(probe.inputs)
        except Exception as e:  # vmap's own failures fall back inside; this is the model failing on its own
            raise LosspathError(f"The model's forward pass fails at the start or end state ({type(e).__name__}: "
                                f"{e}).") from None
    line.vectorize = line.vectorize and vectorize

    n = len(eval_data)
    eval_bs = batch_size or first_batch.size
    if batch_size is None and eval_data.chooses_batch_size:  # EVAL_BATCH, fewer if one α would overflow
        eval_bs = int(min(max(n, 1), EVAL_BATCH, max(1, max_memory // (input_bytes + act_bytes))))
        if second is not None:  # one call per batch, its second-layer outputs for every α in cache
            eval_bs = min(eval_bs, max(16, PAIR_TABLE // (len(alphas) * pair_row_bytes)))
    train_bs = batch_size or BN_BATCH_SIZE
    widest = max(eval_bs, train_bs if train is not None else 0)
    chunk, per_call = _plan(len(alphas), line.bytes_per_alpha(), widest * input_bytes, widest * act_bytes,
                            max_memory, WORKING_SET if device.type == "cpu" else GPU_WORKING_SET)

    names = list(objective.metric_names)
    loss_values = np.zeros(len(alphas))
    metric_values = {name: np.zeros(len(alphas)) for name in names}
    counts = np.zeros((len(alphas), classes or 0), dtype=np.int64)
    reasons = [""] * len(alphas)
    check64 = Float64Check(model, extract)
    bar = _progress(len(alphas), progress)
    examples = 0
    with torch.inference_mode(), options.numerics(device), options.autocast(device):
        for lo in range(0, len(alphas), chunk):
            a = torch.tensor(alphas[lo : lo + chunk], dtype=torch.float64, device=device)
            stacked, fixed = line.states(a)
            reasons[lo : lo + len(a)] = negative_variances(stacked, len(a))
            if train is not None:
                stacked.update(line.recompute(stacked, fixed, train.batches(train_bs, bn_batches), len(a), per_call))
            totals = Totals(len(a), names, classes, device)
            chunk_reasons = reasons[lo : lo + len(a)]
            examples = _evaluate_chunk(line, stacked, fixed, a, eval_data.batches(eval_bs), per_call, objective,
                                       totals, chunk_reasons, check64,
                                       lambda k: bar.update(len(a) * k / n if n else 0))
            reasons[lo : lo + len(a)] = chunk_reasons
            if not bool((totals.loss_weight > 0).all()):
                raise LosspathError("No example of the data is scored (are all the labels -100, or all weights 0?).")
            loss_values[lo : lo + chunk] = (totals.loss / totals.loss_weight).cpu().numpy()
            for name in names:
                mean = totals.metrics[name] / totals.metric_weights[name]
                metric_values[name][lo : lo + chunk] = mean.cpu().numpy()
            if classes:
                counts[lo : lo + chunk] = totals.class_counts.cpu().numpy()
            if not n:
                bar.update(len(a))
    bar.close()

    undefined = np.array([bool(r) for r in reasons])
    loss_values[undefined] = np.nan
    for values in metric_values.values():
        values[undefined] = np.nan
    counts[undefined] = 0

    from ..metrics import distance, relative_distance

    params = [k for k, _ in model.named_parameters()]
    error = metric_values["error"] if "error" in metric_values else np.full(len(alphas), np.nan)
    return LineResult(
        alphas=alphas, loss=loss_values, error=error, class_counts=counts, num_examples=examples,
        scheme=scheme if isinstance(scheme, str) else ",".join(scheme), batchnorm=batchnorm,
        distance=distance(start_state, end_state, params),
        relative_distance=relative_distance(start_state, end_state, params),
        info={"chunk": chunk, "per_call": per_call, "batch_size": eval_bs, "first_layer": first,
              "relu_pair": second, "relu_after_pair": out_relu, "vectorized": line.vectorize,
              "path": "vectorized" if line.vectorize else "one alpha at a time", "fallback": line.fallback,
              "compute": options.record()},
        metrics=metric_values, undefined=undefined, undefined_reason=reasons, objective=objective.name,
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


def _probe(net: nn.Module, state: State, batch: Batch, objective, extract) -> tuple[int, int, int | None, bool]:
    """Run one small batch and check the prediction suits the objective. Returns bytes per example of the
    inputs, bytes per example and α of the activations one forward holds at once (three times the largest
    leaf-module output: a layer's input, its output and a residual branch alive together), the classes to count
    (None: none) and whether the model's output is a plain tensor."""
    largest = [0]

    def measure(module, args, out):
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                largest[0] = max(largest[0], t.numel() * t.element_size())

    handles = [m.register_forward_hook(measure) for m in net.modules() if not any(True for _ in m.children())]
    try:
        with torch.inference_mode():
            out = functional_call(net, state, batch.inputs.args, batch.inputs.kwargs)
    except LosspathError:
        raise
    except Exception as e:
        raise LosspathError(f"The model's forward pass fails on a batch of the data ({type(e).__name__}: {e}).") \
            from None
    finally:
        for h in handles:
            h.remove()
    pred = extract(out)
    if pred.dim() == 0 or pred.shape[0] != batch.size:
        raise LosspathError(f"The model must return one prediction per example ({batch.size} in the probe batch); "
                            f"it returned {tuple(pred.shape)}.")
    classes = objective.check(pred, batch.target)
    largest = max(largest[0], pred.numel() * pred.element_size())
    inputs = sum(t.numel() * t.element_size() for t in batch.inputs.tensors())
    per_example = [max(1, math.ceil(b / batch.size)) for b in (inputs, 3 * largest)]
    return per_example[0], per_example[1], classes, isinstance(out, torch.Tensor)


def _evaluate_chunk(line: StackedLine, stacked: State, fixed: State, alphas: torch.Tensor, batches, per_call: int,
                    objective, totals, reasons: list[str], check64: Float64Check, advance) -> int:
    """Add the scores of every batch at the alphas of `stacked` to `totals`; each batch runs through them in
    vmapped calls of `per_call` α. NaN predictions at a still-defined α are checked in float64 (undefined.py)
    and, if NaN there too, mark the α undefined in `reasons`. Returns the number of examples."""
    k = len(alphas)
    examples = 0
    for batch in batches:
        line.new_batch()
        for c0 in range(0, k, per_call):
            c1 = min(c0 + per_call, k)
            part = {name: v[c0:c1] for name, v in stacked.items()}
            predictions = line.forward(part, fixed, batch.inputs, c1 - c0)
            if bool(predictions.isnan().any()):
                nan_rows = predictions.reshape(c1 - c0, -1).isnan().any(1).tolist()
                for i in [c0 + j for j, bad in enumerate(nan_rows) if bad and not reasons[c0 + j]]:
                    if check64.nan(line.state_at(stacked, i, float(alphas[i])), batch.inputs):
                        reasons[i] = NAN_OUTPUT
            objective.score(predictions, batch.target, totals.part(c0, c1))
        examples += batch.size
        advance(batch.size)
    return examples


def _plan(n_alphas: int, param_bytes: int, input_bytes: int, act_bytes: int, max_memory: int,
          working_set: int = WORKING_SET) -> tuple[int, int]:
    """(α per state chunk, α per vmapped call). `input_bytes`/`act_bytes` are per batch (act_bytes per α).

    Calls hold about `working_set` bytes of activations (at least one α); the state chunk takes as many α as the
    rest of `max_memory` holds, so usually every α shares one pass over the data.
    """
    per_call = int(min(n_alphas, max(1, working_set // act_bytes), max(1, max_memory // (param_bytes + act_bytes))))
    room = max_memory - input_bytes - per_call * act_bytes
    chunk = int(min(n_alphas, max(per_call, room // max(param_bytes, 1))))
    chunk = math.ceil(n_alphas / math.ceil(n_alphas / chunk))  # equal chunks
    per_call = math.ceil(chunk / math.ceil(chunk / min(per_call, chunk)))
    return chunk, per_call
