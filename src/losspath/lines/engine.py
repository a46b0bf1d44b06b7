"""`evaluate_line`: loss, error and predicted classes at many points θ(α) of the line between two states.

The experiment of Goodfellow et al. 2015 and Frankle 2020 (§2: "we linearly interpolate using 100 evenly
spaced points"), with the bias schemes of Wang et al. 2023. Many α are evaluated in one pass: the states of a
chunk of α are stacked and the model runs under `torch.func.vmap(functional_call(...))` (the torch.func
"model ensembling" recipe), so each layer becomes one batched matmul over α. The first layer runs twice per
batch instead of once per α (`first_layer.py`), and BatchNorm statistics can be re-estimated at every α
(`batchnorm.py`). A model vmap cannot handle is evaluated one α at a time, with a warning.
"""
from __future__ import annotations

import copy
import math
import sys
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from ..errors import LosspathError
from .batchnorm import CumulativeAverage, batch_statistics, tracked_batchnorms
from .data_source import DataSource
from .first_layer import FirstLayerShortcut, find_first_layer
from .result import LineResult
from .schemes import Rule, layer_depths, line_rules, module_of
from .states import State, blend, check_endpoints, check_finite, resolve_state

MIN_BATCH = 256  # when we choose the batch size, shrink the α chunk before going below this
BN_BATCH_SIZE = 128  # training batch size for recomputed BN statistics, unless batch_size is given


def evaluate_line(model: nn.Module, start, end, data, *, points: int = 100, alphas=None, scheme="all",
                  batchnorm: str = "interpolate", train_data=None, batch_size: int | None = None, device=None,
                  progress: bool = True, hold: str = "end", bn_batches: int | None = None,
                  max_memory: int = 2**30, first_layer_shortcut: bool = True) -> LineResult:
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
    max_memory bytes for one vmapped call (stacked states + activations, estimated by a probe forward); sets
               how many α run at once and, for tensors and Splits with batch_size=None, the batch size.
    first_layer_shortcut  evaluate the first Linear/Conv layer once per endpoint instead of once per α.
    """
    alphas = _alpha_grid(points, alphas)
    for name, value in (("batch_size", batch_size), ("bn_batches", bn_batches)):
        if value is not None and (not isinstance(value, int) or value < 1):
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

    first_x, _ = eval_data.first(None if not eval_data.chooses_batch_size else 8)
    probe_x = first_x[:8]
    act_bytes = _probe(net, end_state, probe_x)
    depths = layer_depths(net, probe_x, end_state) if scheme == "homogeneous" else None
    rules = line_rules(list(reference), reference, scheme, hold=hold, batchnorm=batchnorm, depths=depths)
    first = find_first_layer(net, probe_x, end_state) if first_layer_shortcut else None
    line = _Line(net, start_state, end_state, rules, first)

    n = len(eval_data)
    eval_bs = batch_size or (len(first_x) if not eval_data.chooses_batch_size else None)
    train_bs = batch_size or BN_BATCH_SIZE
    chunk, eval_bs = _plan(len(alphas), n, line.bytes_per_alpha(), act_bytes, max_memory, eval_bs,
                           train_bs if train is not None else None)

    loss = np.zeros(len(alphas))
    errors = np.zeros(len(alphas), dtype=np.int64)
    counts = None
    examples = 0
    starts = range(0, len(alphas), chunk)
    bar = _progress(len(starts), progress)
    with torch.inference_mode():
        for lo in starts:
            a = torch.tensor(alphas[lo : lo + chunk], dtype=torch.float64, device=device)
            batched, fixed = line.states(a)
            if train is not None:
                batched.update(line.recompute(batched, fixed, train.batches(train_bs, bn_batches), len(a)))
            sums = [torch.zeros(len(a), dtype=torch.float64, device=device), torch.zeros(len(a), dtype=torch.long,
                    device=device), None]
            examples = 0
            for x, y in eval_data.batches(eval_bs):
                logits = line.forward(batched, fixed, x, len(a))[0]
                _score(logits, y, sums)
                examples += len(y)
            loss[lo : lo + chunk] = (sums[0] / max(examples, 1)).cpu().numpy()
            errors[lo : lo + chunk] = sums[1].cpu().numpy()
            counts = sums[2].cpu().numpy() if counts is None else np.concatenate([counts, sums[2].cpu().numpy()])
            bar.update(1)
    bar.close()

    from ..metrics import distance, relative_distance

    names = [k for k, _ in model.named_parameters()]
    return LineResult(
        alphas=alphas, loss=loss, error=errors / max(examples, 1), class_counts=counts, num_examples=examples,
        scheme=scheme if isinstance(scheme, str) else ",".join(scheme), batchnorm=batchnorm,
        distance=distance(start_state, end_state, names), relative_distance=relative_distance(start_state, end_state,
                                                                                              names),
        info={"chunk": chunk, "batch_size": eval_bs, "first_layer": first, "vectorized": line.vectorize},
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
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="line", unit="chunk", disable=not progress or not sys.stderr.isatty())


def _probe(net: nn.Module, state: State, x: torch.Tensor) -> int:
    """Run one small batch; check the output is (batch, classes) logits; return activation bytes per example
    and α: the input plus every leaf module's output (an upper bound on what one forward holds at once)."""
    total = [x.numel() * x.element_size()]

    def count(module, args, out):
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                total[0] += t.numel() * t.element_size()

    handles = [m.register_forward_hook(count) for m in net.modules() if not any(True for _ in m.children())]
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
    return max(1, math.ceil(total[0] / x.shape[0]))


def _plan(n_alphas, n_examples, param_bytes, act_bytes, max_memory, eval_bs, train_bs):
    """Chunk of α and evaluation batch size so that stacked states + activations fit `max_memory`."""
    floor = eval_bs or max(1, min(n_examples, MIN_BATCH))
    widest = max(floor, train_bs or 0)
    chunk = int(min(n_alphas, max(1, max_memory // (param_bytes + widest * act_bytes))))
    chunk = math.ceil(n_alphas / math.ceil(n_alphas / chunk))  # equal chunks
    if eval_bs is None:
        eval_bs = int(min(max(n_examples, 1), max(floor, (max_memory // chunk - param_bytes) // act_bytes)))
    return chunk, eval_bs


def _score(logits: torch.Tensor, y: torch.Tensor, sums: list) -> None:
    """Add per-example cross-entropy (float64 sums; NaN from overflowed logits counts as inf), errors and
    predicted-class counts for a (alphas, batch, classes) block of logits."""
    logits = logits.float()
    k, b, c = logits.shape
    targets = y.unsqueeze(0).expand(k, b)
    loss = F.cross_entropy(logits.reshape(k * b, c), targets.reshape(-1), reduction="none").view(k, b)
    loss = torch.nan_to_num(loss, nan=math.inf)
    sums[0] += loss.double().sum(1)
    pred = logits.argmax(-1)
    sums[1] += (pred != targets).sum(1)
    if sums[2] is None:
        sums[2] = torch.zeros(k, c, dtype=torch.long, device=logits.device)
    sums[2].scatter_add_(1, pred, torch.ones_like(pred))


class _Line:
    """The model copy, endpoint states and rules; builds per-chunk states and runs (vmapped) forwards."""

    def __init__(self, net: nn.Module, start: State, end: State, rules: dict[str, Rule], first: str | None):
        self.net, self.start, self.end, self.rules = net, start, end, rules
        self.vectorize, self.verified, self.record = True, False, {}
        self.first = first
        self.bn_names = sorted({module_of(k) for k, r in rules.items() if r.recompute})
        bns = tracked_batchnorms(net)
        stray = [name for name in self.bn_names if name not in bns]
        if stray:
            raise LosspathError(f"batchnorm='recompute' needs BatchNorm modules; {', '.join(stray)} are not.")
        if first is not None:
            self.shortcut = FirstLayerShortcut(net.get_submodule(first))
            parent, _, child = first.rpartition(".")
            if first == "":  # the whole model is one layer (softmax regression)
                self.net = self.shortcut
            else:
                setattr(net.get_submodule(parent) if parent else net, child, self.shortcut)

    def _key(self, name: str) -> str:
        return f"{self.first}.{name}" if self.first else name

    def _first_keys(self) -> set[str]:
        return {self._key("weight"), self._key("bias")} if self.first is not None else set()

    def bytes_per_alpha(self) -> int:
        skip = self._first_keys()
        return sum(self.end[k].numel() * self.end[k].element_size()
                   for k, r in self.rules.items() if r.constant is None and k not in skip)

    def _value(self, key: str, a: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """The tensor of `key` for alphas `a`, and whether it is stacked over α."""
        rule = self.rules[key]
        if rule.constant is not None:
            return (self.start if rule.constant == 0 else self.end)[key], False
        return blend(self.start[key], self.end[key], rule.coefficients(a)), True

    def states(self, a: torch.Tensor) -> tuple[State, State]:
        batched, fixed = {}, {}
        skip = self._first_keys()
        for k, rule in self.rules.items():
            if rule.recompute or k in skip:
                continue
            value, stacked = self._value(k, a)
            (batched if stacked else fixed)[k] = value
        if self.first is not None:
            self._configure_first(a, batched, fixed)
        return batched, fixed

    def _configure_first(self, a, batched, fixed) -> None:
        w, b = self._key("weight"), self._key("bias")
        wrule, brule = self.rules[w], self.rules.get(b)
        if wrule.constant is not None:
            self.shortcut.configure("held", self._value(w, a)[0], None)
        else:
            batched[self._key("weight_coef")] = wrule.coefficients(a).to(self.end[w].dtype)
            if brule is None:
                self.shortcut.configure("lerp", self.start[w], self.end[w])
                return
            if brule.constant is not None:
                held = self._value(b, a)[0]
                self.shortcut.configure("lerp", self.start[w], self.end[w], held, held)
                return
            if brule.power == wrule.power:
                self.shortcut.configure("lerp", self.start[w], self.end[w], self.start[b], self.end[b])
                return
            self.shortcut.configure("lerp_plus_bias", self.start[w], self.end[w])
        if brule is not None:
            value, stacked = self._value(b, a)
            (batched if stacked else fixed)[b] = value

    def forward(self, batched: State, fixed: State, x: torch.Tensor, n: int):
        """(logits (n, batch, classes), recorded BN statistics stacked over α)."""
        record = self.record

        def single(state, x):
            out = functional_call(self.net, (state, fixed), (x,))
            return out, dict(record)

        if not batched:
            out, stats = single({}, x)
            return out.expand(n, *out.shape), {k: tuple(t.expand(n, *t.shape) for t in v) for k, v in stats.items()}
        if self.vectorize:
            try:
                result = vmap(single, in_dims=(0, None))(batched, x)
                self.verified = True
                return result
            except Exception as e:
                if self.verified:
                    raise
                warnings.warn(f"torch.func.vmap cannot run this model ({type(e).__name__}: {e}); "
                              "evaluating one alpha at a time.", stacklevel=3)
                self.vectorize = False
        outs = [single({k: v[i] for k, v in batched.items()}, x) for i in range(n)]
        logits = torch.stack([o[0] for o in outs])
        stats = {k: (torch.stack([o[1][k][0] for o in outs]), torch.stack([o[1][k][1] for o in outs]))
                 for k in outs[0][1]}
        return logits, stats

    def recompute(self, batched: State, fixed: State, train_batches, n: int) -> State:
        """Running statistics at every α of the chunk: the exact cumulative average over `train_batches`."""
        average = CumulativeAverage()
        with batch_statistics(self.net, self.bn_names) as record:
            self.record = record
            try:
                for x, _ in train_batches:
                    average.add(self.forward(batched, fixed, x, n)[1])
            finally:
                self.record = {}
        if average.batches == 0:
            raise LosspathError("The training data for batchnorm='recompute' is empty.")
        stats = average.result(torch.float64)
        return {k: v.to(self.end[k].dtype) for k, v in stats.items() if k in self.rules}
