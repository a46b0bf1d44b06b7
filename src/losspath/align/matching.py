"""Weight matching and activation matching: the permutation of B's hidden units that best matches A's.

Weight matching (Ainsworth, Hayase & Srinivasa 2023, "Git Re-Basin", §3.2 and Algorithm 1): maximize
Σ_ℓ ⟨W_ℓ^A, P_ℓ W_ℓ^B P_{ℓ−1}^T⟩ over the permutations P of all groups. The problem couples neighbouring
groups, so it is solved coordinate-wise: one group at a time, holding the others, it is a linear assignment
problem max_P ⟨C, P⟩ with C[i, j] = Σ over the group's tensor axes ⟨row i of A, row j of B with the other
groups' current permutations applied⟩, solved exactly by scipy's `linear_sum_assignment`; groups are visited
in a random order, and the sweep repeats until no permutation changes.

Activation matching (Git Re-Basin §3.1; Entezari et al. 2022 and Jordan et al. 2023 match units by the
correlation of their activations): run both networks on the same batch, record each group's post-activation
values, and assign B's units to A's to maximize the sum of Pearson correlations — one linear assignment per
group, independent of the others because a permutation does not change the values a unit computes.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import fx, nn

from ..errors import LosspathError
from ..keys import State, is_bn_stat, is_weight, module_of
from .states import check_states, resolve
from .spec import PermutationSpec, apply_permutation, make_spec, permute_axis
from .trace import trace_groups


def permutation_spec(model: nn.Module, spec: dict | None = None) -> PermutationSpec:
    """The model's permutation groups: traced from its code (align.trace), or checked from an explicit
    `spec` = {group name: [(state key, axis) or (key, axis, block length), ...]}."""
    if spec is not None:
        return spec if isinstance(spec, PermutationSpec) else make_spec(spec, model.state_dict())
    return trace_groups(model)[0]


def _states(model: nn.Module, state_a, state_b) -> tuple[State, State]:
    a, b = resolve(state_a, "first"), resolve(state_b, "second")
    check_states(model, a, b)
    return a, b


def _usable(spec: PermutationSpec) -> PermutationSpec:
    if not spec.groups:
        why = f" ({'; '.join(spec.fixed)} fix every unit)" if spec.fixed else ""
        raise LosspathError(f"The model has no hidden units that can be permuted{why}; pass an explicit spec=.")
    return spec


def _rows(t: torch.Tensor, axis: int, inner: int) -> torch.Tensor:
    """`t` as a (units, everything else) float64 matrix, unit blocks along `axis` first."""
    shape = t.shape
    blocks = t.double().reshape(*shape[:axis], shape[axis] // inner, inner, *shape[axis + 1:])
    return blocks.movedim(axis, 0).reshape(shape[axis] // inner, -1)


def weight_matching(model: nn.Module, state_a, state_b, *, spec=None, max_iter: int = 100, seed: int = 0,
                    return_perms: bool = False):
    """B's state with its hidden units permuted to match A's weights (Git Re-Basin's weight matching).

    model     the architecture (its own weights are not used); its permutation groups are traced from its
              code unless `spec` is given (see `permutation_spec`).
    state_a/b state dicts, checkpoint paths or "RUN_DIR@STEP" references, as for `evaluate_line`.
    Only parameters enter the objective; BatchNorm running statistics are permuted along with their layer. The
    costs are computed on the CPU in float64; the result keeps B's devices and dtypes.
    Returns the permuted state of B (a network computing the same function as B), and with
    `return_perms=True` also {group: index array}, unit i of the result being unit perm[i] of B.
    """
    a, b = _states(model, state_a, state_b)
    spec = _usable(permutation_spec(model, spec))
    a_cpu, b_cpu = ({k: v.detach().cpu() for k, v in s.items()} for s in (a, b))  # costs on the CPU, in float64
    if max_iter < 1:
        raise LosspathError(f"max_iter must be at least 1, not {max_iter}.")
    perms = {name: torch.arange(n) for name, n in spec.sizes.items()}
    axes_of = {}  # key -> [(axis, inner, group)]
    for name, entries in spec.groups.items():
        for key, axis, inner in entries:
            axes_of.setdefault(key, []).append((axis, inner, name))
    matched = [(name, [(k, ax, i) for k, ax, i in entries if not is_bn_stat(k)])
               for name, entries in spec.groups.items()]
    rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        changed = False
        for index in rng.permutation(len(matched)):
            name, entries = matched[index]
            cost = torch.zeros(spec.sizes[name], spec.sizes[name], dtype=torch.float64)
            for key, axis, inner in entries:
                w_b = b_cpu[key]
                for other_axis, other_inner, other in axes_of[key]:
                    if other != name:
                        w_b = permute_axis(w_b, other_axis, other_inner, perms[other])
                cost += _rows(a_cpu[key], axis, inner) @ _rows(w_b, axis, inner).T
            _, cols = linear_sum_assignment(cost.numpy(), maximize=True)
            new = torch.as_tensor(cols, dtype=torch.long)
            old_score = float(cost[torch.arange(len(new)), perms[name]].sum())
            new_score = float(cost[torch.arange(len(new)), new].sum())
            if new_score > old_score + 1e-12 * max(1.0, abs(old_score)):
                perms[name], changed = new, True
        if not changed:
            break
    perms = {name: p.numpy() for name, p in perms.items()}
    permuted = apply_permutation(spec, perms, b)
    return (permuted, perms) if return_perms else permuted


def activation_matching(model: nn.Module, state_a, state_b, data, *, spec=None, activations: dict | None = None,
                        examples: int | None = None, batch_size: int = 512, return_perms: bool = False):
    """B's state with its hidden units permuted to maximize the correlation of their activations with A's on
    `data` (inputs, or (inputs, targets), or an in-memory losspath split): its first `examples` inputs (default:
    all), in batches of `batch_size`.

    Each traced group is matched on the outputs of the activation functions that carry it (post-ReLU values,
    every spatial position a sample); a group with no activation (e.g. a linear bottleneck) is matched on the
    output of the layers that produce it. With an explicit `spec`, pass `activations` = {group: [fx node
    names]} too. Returns the permuted state (and the permutations with `return_perms=True`).
    """
    a, b = _states(model, state_a, state_b)
    traced, nodes, gm = trace_groups(model)
    spec = _usable(permutation_spec(model, spec) if spec is not None else traced)
    nodes = dict(nodes, **(activations or {}))
    for name, entries in spec.groups.items():
        if not nodes.get(name):  # no activation: the layers writing the group (axis 0 of their weight)
            nodes[name] = [_node_name(gm, k) for k, ax, _ in entries if ax == 0 and is_weight(k)]
    known = {n.name for n in gm.graph.nodes}
    for name in spec.groups:
        missing = [n for n in nodes[name] if n not in known]
        if missing or not nodes[name]:
            raise LosspathError(f"Group {name!r} has no traced activation to match on; pass activations=.")
    inputs = _inputs(data)[:examples]
    stats = {name: _CrossMoments(spec.sizes[name]) for name in spec.groups}
    net_a, net_b = _copy_with(gm, a), _copy_with(gm, b)
    with torch.inference_mode():
        for lo in range(0, len(inputs), batch_size):
            x = inputs[lo : lo + batch_size]
            acts_a, acts_b = _record(net_a, x), _record(net_b, x)
            for name in spec.groups:
                for node in nodes[name]:
                    stats[name].add(_units_last(acts_a[node]), _units_last(acts_b[node]))
    perms = {}
    for name, s in stats.items():
        _, cols = linear_sum_assignment(s.correlation(), maximize=True)
        perms[name] = cols
    permuted = apply_permutation(spec, perms, b)
    return (permuted, perms) if return_perms else permuted


def _node_name(gm: fx.GraphModule, key: str) -> str:
    module = module_of(key)
    for n in gm.graph.nodes:
        if n.op == "call_module" and n.target == module:
            return n.name
    return module


def _inputs(data) -> torch.Tensor:
    if hasattr(data, "inputs"):
        data = data.inputs
    if isinstance(data, (tuple, list)):
        data = data[0]
    if not isinstance(data, torch.Tensor) or len(data) < 2:
        raise LosspathError("Activation matching needs a tensor of at least two inputs, an (inputs, targets) pair or "
                            "an in-memory split (a streamed data set such as ImageNet has no input tensor).")
    return data


def _copy_with(gm: fx.GraphModule, state: State) -> fx.GraphModule:
    import copy

    net = copy.deepcopy(gm).eval()
    net.load_state_dict(state, strict=False)
    return net


class _Recorder(fx.Interpreter):
    def run_node(self, n):
        value = super().run_node(n)
        self.values[n.name] = value
        return value


def _record(gm: fx.GraphModule, x: torch.Tensor) -> dict:
    r = _Recorder(gm)
    r.values = {}
    p = next(gm.parameters())
    r.run(x.to(device=p.device, dtype=p.dtype))
    return r.values


def _units_last(t: torch.Tensor) -> torch.Tensor:
    """(samples, units): axis 1 holds the units, every other axis counts as samples."""
    return t.detach().cpu().double().movedim(1, -1).reshape(-1, t.shape[1])


class _CrossMoments:
    """Running sums for the Pearson correlation between every unit of A and every unit of B."""

    def __init__(self, n: int):
        self.count, self.sa, self.sb = 0, torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
        self.saa, self.sbb = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
        self.sab = torch.zeros(n, n, dtype=torch.float64)

    def add(self, za: torch.Tensor, zb: torch.Tensor) -> None:
        self.count += len(za)
        self.sa += za.sum(0)
        self.sb += zb.sum(0)
        self.saa += (za * za).sum(0)
        self.sbb += (zb * zb).sum(0)
        self.sab += za.T @ zb

    def correlation(self) -> np.ndarray:
        n = self.count
        mean_a, mean_b = self.sa / n, self.sb / n
        cov = self.sab / n - torch.outer(mean_a, mean_b)
        std_a = (self.saa / n - mean_a**2).clamp_min(0).sqrt()
        std_b = (self.sbb / n - mean_b**2).clamp_min(0).sqrt()
        return (cov / (torch.outer(std_a, std_b) + 1e-12)).numpy()  # dead units: correlation 0
