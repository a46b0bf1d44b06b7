"""Permutation groups of a network, and applying permutations to a state dict.

A hidden unit of a network can be moved to another position without changing the function, as long as every
tensor indexed by that unit moves with it (Entezari et al. 2022, §2; Ainsworth, Hayase & Srinivasa 2023,
"Git Re-Basin", §2: the output rows of a layer, its bias, the BatchNorm that follows it, and the input columns
of the next layer). A *group* is one such set of tensor axes that share a permutation; a residual addition
ties the groups of its two inputs into one (Git Re-Basin, Appendix "permutation specs" for ResNets).

An axis entry is (key, axis, inner): axis `axis` of state[key] holds `size · inner` entries, unit u owning the
contiguous block [u·inner, (u+1)·inner) (inner > 1 where a Linear reads a flattened C×L feature map).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import LosspathError
from ..keys import State

Entry = tuple[str, int, int]  # (state key, axis, inner block length)


@dataclass(frozen=True)
class PermutationSpec:
    """Named groups of axes that share one permutation, and each group's number of units."""

    groups: dict[str, tuple[Entry, ...]]
    sizes: dict[str, int]
    fixed: tuple[str, ...] = field(default=())  # why some units stay in place (from tracing), for `describe`

    def describe(self) -> str:
        lines = [f"{name}: {self.sizes[name]} units, {len(entries)} tensor axes "
                 f"({', '.join(f'{k}[{a}]' for k, a, _ in entries)})" for name, entries in self.groups.items()]
        return "\n".join(lines) if lines else "no permutable hidden units"


def make_spec(groups: dict, state: State) -> PermutationSpec:
    """A checked PermutationSpec from an explicit `{name: [(key, axis) or (key, axis, inner), ...]}`: every key
    exists in `state`, every axis exists, and all axes of a group hold the same number of units."""
    if not isinstance(groups, dict) or not groups:
        raise LosspathError("A permutation spec must be a non-empty dict {group name: [(key, axis), ...]}.")
    out, sizes, seen = {}, {}, {}
    for name, entries in groups.items():
        checked = []
        for entry in entries:
            if not isinstance(entry, (tuple, list)) or len(entry) not in (2, 3):
                raise LosspathError(f"Group {name!r}: each entry must be (key, axis) or (key, axis, inner), "
                                    f"not {entry!r}.")
            key, axis, inner = (*entry, 1) if len(entry) == 2 else entry
            if key not in state:
                raise LosspathError(f"Group {name!r} names {key!r}, which is not in the state dict.")
            t = state[key]
            if not isinstance(axis, int) or not 0 <= axis < t.dim():
                raise LosspathError(f"Group {name!r}: {key!r} has {t.dim()} axes, so axis {axis!r} does not exist.")
            if not isinstance(inner, int) or inner < 1 or t.shape[axis] % inner:
                raise LosspathError(f"Group {name!r}: block length {inner!r} does not divide axis {axis} of {key!r} "
                                    f"({t.shape[axis]} entries).")
            if (key, axis) in seen:
                raise LosspathError(f"{key!r} axis {axis} is in two groups, {seen[key, axis]!r} and {name!r}.")
            seen[key, axis] = name
            checked.append((key, axis, inner))
        if not checked:
            raise LosspathError(f"Group {name!r} has no entries.")
        units = {state[k].shape[a] // i for k, a, i in checked}
        if len(units) != 1:
            raise LosspathError(f"The axes of group {name!r} hold different numbers of units: {sorted(units)}.")
        out[str(name)], sizes[str(name)] = tuple(checked), units.pop()
    return PermutationSpec(out, sizes)


def permute_axis(t: torch.Tensor, axis: int, inner: int, perm: torch.Tensor) -> torch.Tensor:
    """`t` with the units along `axis` reordered: unit i of the result is unit perm[i] of `t`."""
    shape = t.shape
    blocks = t.reshape(*shape[:axis], shape[axis] // inner, inner, *shape[axis + 1:])
    return blocks.index_select(axis, perm.to(t.device)).reshape(shape)


def apply_permutation(spec: PermutationSpec, perms: dict, state: State) -> State:
    """A new state dict in which every group's units are reordered by its permutation (an index array:
    new unit i = old unit perms[name][i]); tensors of no group are shared with `state`, not copied."""
    out = dict(state)
    for name, entries in spec.groups.items():
        if name not in perms:
            continue
        perm = torch.as_tensor(np.asarray(perms[name]), dtype=torch.long)
        if sorted(perm.tolist()) != list(range(spec.sizes[name])):
            raise LosspathError(f"The permutation of group {name!r} is not a permutation of "
                                f"0..{spec.sizes[name] - 1}.")
        for key, axis, inner in entries:
            out[key] = permute_axis(out[key], axis, inner, perm)
    return out


def invert(perm) -> np.ndarray:
    """The inverse permutation: invert(p)[p[i]] = i."""
    p = np.asarray(perm)
    inv = np.empty_like(p)
    inv[p] = np.arange(len(p))
    return inv


def random_permutations(spec: PermutationSpec, seed: int) -> dict[str, np.ndarray]:
    """One uniformly random permutation per group, from a generator seeded by `seed`."""
    rng = np.random.default_rng(seed)
    return {name: rng.permutation(n) for name, n in spec.sizes.items()}
