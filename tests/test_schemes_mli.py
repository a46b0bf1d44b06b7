"""The two homogeneous schemes of the MLI study against states built by hand, one α at a time."""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from losspath import evaluate_line


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)).double()


def by_hand(model, start, end, alpha, output_power_only):
    """θ(α): every key linear in α; biases with c = α^depth (depth of Linear k is k: 1, 2, 3), either the output
    bias alone (homogeneous_output) or every bias (homogeneous)."""
    depth = {"0": 1, "2": 2, "4": 3}
    state = {}
    for k in start:
        module, leaf = k.split(".")
        c = alpha
        if leaf == "bias" and (module == "4" or not output_power_only):
            c = alpha ** depth[module]
        state[k] = (1 - c) * start[k] + c * end[k]
    model.load_state_dict(state)
    return model


def test_homogeneous_output_moves_only_the_output_bias_by_alpha_to_the_depth():
    model = mlp()
    g = torch.Generator().manual_seed(1)
    start = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in model.state_dict().items()}
    end = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in model.state_dict().items()}
    x, y = torch.randn(32, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (32,), generator=g)
    alphas = np.array([0.0, 0.3, 0.7, 1.0])
    for scheme, output_only in (("homogeneous_output", True), ("homogeneous", False)):
        line = evaluate_line(mlp(), start, end, (x, y), alphas=alphas, scheme=scheme, progress=False)
        expected = [F.cross_entropy(by_hand(mlp(), start, end, a, output_only)(x), y).item() for a in alphas]
        np.testing.assert_allclose(line.loss, expected, rtol=1e-12, atol=1e-12)
    # the two differ once hidden biases move: they are different schemes
    out_only = evaluate_line(mlp(), start, end, (x, y), alphas=alphas, scheme="homogeneous_output", progress=False)
    every = evaluate_line(mlp(), start, end, (x, y), alphas=alphas, scheme="homogeneous", progress=False)
    assert not np.allclose(out_only.loss[1:3], every.loss[1:3])
