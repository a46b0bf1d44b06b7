"""Permutation groups derived from the model's code by tracing it with torch.fx.

Each value in the traced graph gets a *state* for its channel axis (axis 1):
  CONST  the same for every ordering of the units (scalars, `ones_like`, shapes): combines with anything;
  FIXED  tied to something that cannot be permuted (the input, the output, an operation we do not know);
  (g, flat)  the units of group g, on axis 1, or — flat — as contiguous blocks after `flatten(1)`.
A Linear or Conv starts a new group (its output rows and bias) and joins the group of its input (its input
columns); BatchNorm, activations, pooling and dropout pass the group through with their own tensors; a
residual addition (or any elementwise op of two grouped values) merges the two groups; anything else fixes
the groups it touches. Fixing units is always safe (it only forgoes a permutation), so an unknown operation
costs alignment freedom, never correctness. Groups that end up fixed are dropped. Groups are merged with a
union-find whose root 0 is FIXED.

Assumption: a Linear that receives grouped units reads them on its input axis (a 2-D input, or a flattened
feature map); a Linear applied along the last axis of an N-D tensor whose axis 1 is grouped is not detected.
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import LosspathError
from ..keys import BN_STATS
from ..models.activations import PolyReLU
from .spec import PermutationSpec

CONST, FIXED = "const", 0

ACTIVATION_MODULES = (nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.ELU, nn.Tanh, nn.Sigmoid, nn.Softplus,
                      nn.Hardtanh, nn.Mish, PolyReLU)
PASS_MODULES = ACTIVATION_MODULES + (
    nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
ACTIVATION_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, F.elu, F.softplus, F.hardtanh,
                        torch.sigmoid, torch.tanh, F.sigmoid, F.tanh}
PASS_FUNCTIONS = ACTIVATION_FUNCTIONS | {
    F.dropout, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
    F.adaptive_max_pool2d, F.adaptive_max_pool3d, operator.neg, torch.neg, torch.abs}
ACTIVATION_METHODS = {"relu", "relu_", "sigmoid", "tanh"}
PASS_METHODS = ACTIVATION_METHODS | {"contiguous", "clone", "detach", "float", "double", "half", "to", "abs", "neg"}
BINARY = {operator.add, operator.iadd, operator.sub, operator.mul, operator.truediv, operator.pow, torch.add,
          torch.sub, torch.mul, torch.div}
BINARY_METHODS = {"add", "add_", "sub", "mul", "div", "pow"}
CONST_FUNCTIONS = {torch.ones_like, torch.zeros_like, torch.full_like, getattr}
CONST_METHODS = {"size", "dim"}
REDUCE = {torch.mean, torch.sum, torch.amax, torch.amin}
REDUCE_METHODS = {"mean", "sum", "amax", "amin"}


class _LeafTracer(fx.Tracer):
    """torch.fx's tracer, with losspath's polynomial activation kept as one elementwise call."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, PolyReLU) or super().is_leaf_module(m, qualname)


class _Groups:
    """Union-find over groups; group 0 is FIXED. Each tensor axis belongs to at most one group."""

    def __init__(self):
        self.parent, self.size, self.producer = [0], [None], ["(fixed)"]
        self.owner: dict[tuple[str, int], int] = {}
        self.inner: dict[tuple[str, int], int] = {}
        self.activations: dict[int, list[str]] = {}
        self.fixed_by: list[str] = []

    def new(self, size: int, producer: str) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.producer.append(producer)
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        if b == FIXED or (a != FIXED and b < a):
            a, b = b, a
        self.parent[b] = a
        return a

    def add(self, g: int, key: str, axis: int, inner: int = 1) -> None:
        """Put axis `axis` of `key` into group g (merging g with the axis's group if it already has one)."""
        if (key, axis) in self.owner:
            self.union(g, self.owner[key, axis])
            if self.inner[key, axis] != inner:
                self.union(g, FIXED)
        else:
            self.owner[key, axis], self.inner[key, axis] = g, inner


def trace_groups(model: nn.Module) -> tuple[PermutationSpec, dict[str, list[str]], fx.GraphModule]:
    """The model's permutation groups (see the module doc), the activation nodes that carry each group (for
    activation matching), and the traced module."""
    try:
        graph = _LeafTracer().trace(model)
    except Exception as e:  # torch.fx raises many types for code it cannot trace
        raise LosspathError(f"Could not trace {type(model).__name__} with torch.fx ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}); pass an explicit spec=.") from None
    gm = fx.GraphModule(model, graph)
    groups, states = _Groups(), {}
    modules = dict(model.named_modules())
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    for node in graph.nodes:
        states[node.name] = _visit(node, [_state(a, states) for a in _node_args(node)], groups, modules, tensors)
    return _spec(groups, tensors), _activation_nodes(groups), gm


def _node_args(node: fx.Node) -> list:
    return list(node.args) + list(node.kwargs.values())


def _state(arg, states):
    if isinstance(arg, fx.Node):
        return states[arg.name]
    if isinstance(arg, (tuple, list)):
        inner = [_state(a, states) for a in arg]
        grouped = [s for s in inner if s != CONST]
        return grouped[0] if len(grouped) == 1 and len(inner) == 1 else (CONST if not grouped else ("many", inner))
    return CONST


def _grouped(states) -> list:
    out = []
    for s in states:
        if isinstance(s, tuple) and s and s[0] == "many":
            out.extend(_grouped(s[1]))
        elif s != CONST:
            out.append(s)
    return out


def _fix(node, states, groups: _Groups):
    """Fix every group among `states` (an operation we cannot see through) and return FIXED."""
    touched = [s for s in _grouped(states) if s != FIXED]
    for g, _ in touched:
        groups.union(g, FIXED)
    if touched:
        groups.fixed_by.append(f"{node.name} ({node.op} {getattr(node.target, '__name__', node.target)})")
    return FIXED


def _visit(node: fx.Node, states: list, groups: _Groups, modules: dict, tensors: dict):
    if node.op == "placeholder":
        return FIXED
    if node.op == "output":  # the outputs are what the network computes: their units stay in place
        for s in _grouped(states):
            if s != FIXED:
                groups.union(s[0], FIXED)
        return FIXED
    if node.op == "get_attr":
        t = tensors.get(node.target)
        if t is None:
            return FIXED
        for axis in range(t.dim()):  # a tensor read directly: its units cannot move
            groups.add(FIXED, node.target, axis)
        return CONST if t.numel() == 1 else FIXED
    x = states[0] if states else CONST
    if node.op == "call_module":
        return _visit_module(node, modules[node.target], x, states, groups)
    if node.op == "call_function":
        target = node.target
        if target in CONST_FUNCTIONS:
            return CONST
        if target in PASS_FUNCTIONS:
            return _pass(node, x, groups, activation=target in ACTIVATION_FUNCTIONS) if len(_grouped(states[1:])) == 0 \
                else _fix(node, states, groups)
        if target in BINARY:
            return _binary(node, states, groups)
        if target is torch.flatten:
            return _flatten(node, x, states, groups, default_start=0)
        if target in REDUCE:
            return _reduce(node, x, states, groups)
    if node.op == "call_method":
        name = node.target
        if name in CONST_METHODS:
            return CONST
        if name in PASS_METHODS and not _grouped(states[1:]):
            return _pass(node, x, groups, activation=name in ACTIVATION_METHODS)
        if name in BINARY_METHODS:
            return _binary(node, states, groups)
        if name == "flatten":
            return _flatten(node, x, states, groups, default_start=0)
        if name in ("view", "reshape") and len(node.args) == 3 and node.args[2] == -1 and not isinstance(x, int):
            return (x[0], True) if isinstance(x, tuple) else x
        if name in REDUCE_METHODS:
            return _reduce(node, x, states, groups)
    if all(s == CONST for s in states):
        return CONST
    return _fix(node, states, groups)


def _pass(node, x, groups: _Groups, activation: bool):
    if activation and isinstance(x, tuple) and not x[1]:
        groups.activations.setdefault(x[0], []).append(node.name)
    return x


def _binary(node, states, groups: _Groups):
    grouped = _grouped(states)
    if not grouped:
        return CONST
    if len(grouped) == 1 and len(states) == 2:
        return grouped[0]
    if all(isinstance(s, tuple) for s in grouped) and len({s[1] for s in grouped}) == 1:
        g = grouped[0][0]
        for other, _ in grouped[1:]:
            g = groups.union(g, other)  # a residual addition: both sides must move together
        return (g, grouped[0][1]) if groups.find(g) != FIXED else FIXED
    return _fix(node, states, groups)


def _dims(node, position: int, key: str, default):
    if len(node.args) > position:
        return node.args[position]
    return node.kwargs.get(key, default)


def _flatten(node, x, states, groups, default_start):
    start, end = _dims(node, 1, "start_dim", default_start), _dims(node, 2, "end_dim", -1)
    if not isinstance(x, tuple):
        return x
    if start == 1 and end == -1:
        return (x[0], True)
    if isinstance(start, int) and start >= 2 and not x[1]:
        return x
    return _fix(node, states, groups)


def _reduce(node, x, states, groups):
    dim = _dims(node, 1, "dim", None)
    dims = dim if isinstance(dim, (tuple, list)) else [dim]
    if isinstance(x, tuple) and not x[1] and all(isinstance(d, int) and d >= 2 for d in dims):
        return x
    return CONST if x == CONST else _fix(node, states, groups)


def _visit_module(node, m: nn.Module, x, states, groups: _Groups):
    name = node.target
    if isinstance(m, PASS_MODULES):
        return _pass(node, x, groups, activation=isinstance(m, ACTIVATION_MODULES))
    if isinstance(m, nn.Flatten):
        return _flatten(node, x, states, groups, default_start=m.start_dim) if (m.end_dim == -1) else \
            _fix(node, states, groups)
    if isinstance(m, BATCHNORMS):
        g = x[0] if isinstance(x, tuple) and not x[1] else FIXED
        if g == FIXED:
            _fix(node, states, groups)
        for suffix in ("weight", "bias") + BN_STATS:  # the module's own tensors, read from the module
            if getattr(m, suffix, None) is not None:
                groups.add(g, f"{name}.{suffix}", 0)
        return (g, False) if g != FIXED else FIXED
    if isinstance(m, nn.Linear) or (isinstance(m, CONVS) and m.groups == 1):
        n_in = m.in_features if isinstance(m, nn.Linear) else m.in_channels
        if isinstance(x, tuple):
            g, flat = x
            units = groups.size[g]
            if flat and n_in % units == 0:
                groups.add(g, f"{name}.weight", 1, n_in // units)
            elif not flat and n_in == units:
                groups.add(g, f"{name}.weight", 1)
            else:
                _fix(node, states, groups)
                groups.add(FIXED, f"{name}.weight", 1)
        else:
            groups.add(FIXED, f"{name}.weight", 1)
        out = groups.new(m.weight.shape[0], name)
        groups.add(out, f"{name}.weight", 0)
        if m.bias is not None:
            groups.add(out, f"{name}.bias", 0)
        return (out, False)
    return _fix(node, states, groups)


def _spec(groups: _Groups, tensors: dict) -> PermutationSpec:
    members: dict[int, list] = {}
    for (key, axis), g in groups.owner.items():
        members.setdefault(groups.find(g), []).append((key, axis, groups.inner[key, axis]))
    out, sizes, fixed = {}, {}, list(groups.fixed_by)
    for root, entries in sorted(members.items()):
        if root == FIXED:
            continue
        units = {tensors[k].shape[a] // i for k, a, i in entries}
        name = groups.producer[root]
        if len(units) != 1:
            fixed.append(f"{name} (its tensor axes hold different numbers of units)")
            continue
        out[name], sizes[name] = tuple(entries), units.pop()
    return PermutationSpec(out, sizes, tuple(fixed))


def _activation_nodes(groups: _Groups) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for g, nodes in groups.activations.items():
        root = groups.find(g)
        if root != FIXED:
            out.setdefault(groups.producer[root], []).extend(nodes)
    return out
