"""2-D pictures of many network states: metric MDS on Euclidean distances between their weights.

Liao & Poggio (Theory II, Figs. 3–5) collect models along training trajectories and draw them in the plane
with multidimensional scaling, "such that their pairwise distances are optimized to try to reflect those
distances in the original high-dimensional space", using the weights of one layer (layer 2) or all layers.

Layers are named as in the paper: layer ℓ is the ℓ-th *weight tensor* (a parameter with at least two
dimensions: a Linear matrix or a conv kernel) in the model's `named_parameters()` order, so for `convnet6`
layer 1 is `conv1.weight` and layer 2 is `conv2.weight`; biases are not layers. A parameter name
("conv3.weight") selects that tensor, and "all" every parameter (weights and biases; buffers never).

We compute the distance matrix ourselves (float64, from centred vectors) and hand it to scikit-learn's
metric MDS (SMACOF) as a precomputed dissimilarity, initialised with classical MDS where scikit-learn
offers it (≥ 1.8), else with seeded random starts.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .errors import LosspathError
from .keys import State


def weight_names(model: nn.Module) -> list[str]:
    """The parameters that count as layers: those with ≥ 2 dimensions, in `named_parameters()` order."""
    return [name for name, p in model.named_parameters() if p.dim() >= 2]


def layer_keys(model: nn.Module, layer: int | str) -> list[str]:
    """The state keys that `layer` selects: an index ℓ ≥ 1 (the ℓ-th weight tensor, see module doc), a
    parameter name, or "all" (every parameter)."""
    params = [name for name, _ in model.named_parameters()]
    spec = str(layer).strip()
    if spec.lower() == "all":
        return params
    weights = weight_names(model)
    if spec.lstrip("-").isdigit():
        index = int(spec)
        if not 1 <= index <= len(weights):
            raise LosspathError(f"Layer {index} does not exist; this network has weight layers 1 to "
                                f"{len(weights)} ({', '.join(weights)}).")
        return [weights[index - 1]]
    if spec in params:
        return [spec]
    raise LosspathError(f"Unknown layer {layer!r}; give an index 1 to {len(weights)}, 'all' or a parameter "
                        f"name ({', '.join(params)}).")


def flatten_states(states: Sequence[State], keys: Sequence[str]) -> np.ndarray:
    """An (n, d) float64 matrix: row i is the concatenation of `states[i][k]` for k in `keys`."""
    rows = []
    for i, state in enumerate(states):
        missing = [k for k in keys if k not in state]
        if missing:
            raise LosspathError(f"State {i} has no tensor {missing[0]!r}; the states do not share an architecture.")
        rows.append(torch.cat([state[k].detach().reshape(-1).double().cpu() for k in keys]))
    if not rows:
        return np.zeros((0, 0))
    sizes = {len(r) for r in rows}
    if len(sizes) > 1:
        raise LosspathError("The states' selected tensors differ in size; they do not share an architecture.")
    return torch.stack(rows).numpy()


def pairwise_distances(x: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of `x`, (n, n), symmetric with a zero diagonal.

    Rows are centred first so the Gram-matrix formula ‖a‖² + ‖b‖² − 2a·b loses little to cancellation when the
    points are close to each other but far from the origin (trained weights after a small perturbation).
    """
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    gram = x @ x.T
    sq = np.diag(gram)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)
    d = np.sqrt(d2)
    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0.0)
    return d


def stress1(distances: np.ndarray, embedding: np.ndarray) -> float:
    """Kruskal's Stress-1 of an embedding: sqrt(Σ (‖y_i − y_j‖ − d_ij)² / Σ d_ij²); 0 is a perfect fit."""
    d = np.asarray(distances, dtype=np.float64)
    e = pairwise_distances(embedding)
    iu = np.triu_indices(len(d), 1)
    denom = float(np.sum(d[iu] ** 2))
    return 0.0 if denom == 0 else float(np.sqrt(np.sum((e[iu] - d[iu]) ** 2) / denom))


def _mds(random_state: int, n_init: int, max_iter: int):
    """scikit-learn's metric MDS on precomputed dissimilarities, whatever its version calls the options."""
    from sklearn.manifold import MDS

    params = inspect.signature(MDS).parameters
    kw = dict(n_components=2, random_state=random_state, n_init=n_init, max_iter=max_iter)
    if "metric_mds" in params:  # ≥ 1.8: `metric` names the dissimilarity, `metric_mds` the MDS kind
        kw.update(metric_mds=True, metric="precomputed")
    else:
        kw.update(metric=True, dissimilarity="precomputed")
    if "init" in params:  # ≥ 1.8: start SMACOF from classical MDS (deterministic, and usually the best start)
        kw.update(init="classical_mds", n_init=1)  # one start: further random ones are not drawn
    return MDS(**kw)


def embed_distances(distances: np.ndarray, random_state: int = 0, n_init: int = 2, max_iter: int = 300) -> np.ndarray:
    """An (n, 2) metric-MDS embedding of a precomputed (n, n) Euclidean distance matrix."""
    import warnings

    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise LosspathError(f"A distance matrix must be square, not {d.shape}.")
    n = len(d)
    scale = float(d.max()) if n else 0.0
    if n < 2 or scale == 0.0:
        return np.zeros((n, 2))
    if n == 2:  # SMACOF needs no iterations for two points
        return np.array([[0.0, 0.0], [d[0, 1], 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # scaled to a unit diameter for SMACOF's convergence test, scaled back after
        y = _mds(random_state, n_init, max_iter).fit_transform(d / scale)
    return np.asarray(y, dtype=np.float64) * scale


def embed_states(states: Sequence[State], keys: Sequence[str], random_state: int = 0, n_init: int = 2) -> np.ndarray:
    """(n, 2) MDS coordinates of `states`, from the Euclidean distances between their `keys` tensors
    (e.g. `layer_keys(model, 2)`); row i is states[i]."""
    return embed_distances(pairwise_distances(flatten_states(states, keys)), random_state, n_init)
