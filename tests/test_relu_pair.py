"""The ReLU-pair shortcut (lines/relu_pair.py) against direct computation, and where it must not apply."""
from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from losspath.lines import evaluate_line
from losspath.lines.relu_pair import ALPHAS_KEY, BIAS_KEY, ReluPair

UNSORTED = [1.5, 0.3, -0.5, 0.3, 1.0, 0.0, 0.7, 2.0]  # any order, repeats, extrapolation


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("held_first", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_second_layer_outputs_equal_direct_computation(dtype, tol, held_first, relu):
    g = torch.Generator().manual_seed(3)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)  # noqa: E731
    w1 = (r(30, 7), r(30, 7))
    w1 = (w1[0], w1[0]) if held_first else w1  # a held first weight: only the bias moves
    b1, w2 = (r(30), r(30)), (r(12, 30), r(12, 30))
    x = r(40, 7)
    x[0] = 0  # an example whose pre-activations are the biases alone
    alphas = torch.tensor(UNSORTED, dtype=torch.float64)
    bias = r(len(alphas), 12)
    pair = ReluPair("fc2", relu=relu)
    pair.configure(w1, b1, w2)
    out = pair.fill({ALPHAS_KEY: alphas, BIAS_KEY: bias}, x)["fc2.out"]
    assert out.shape == (len(alphas), 40, 12) and out.dtype == dtype
    for i, a in enumerate(UNSORTED):
        lerp = lambda pair_: (1 - a) * pair_[0] + a * pair_[1]  # noqa: E731
        expected = F.linear(F.relu(F.linear(x, lerp(w1), lerp(b1))), lerp(w2), bias[i])
        torch.testing.assert_close(out[i], F.relu(expected) if relu else expected, rtol=tol, atol=tol)


def test_units_that_never_switch_and_units_at_zero():
    """q = 0 (the unit never switches) and a pre-activation exactly 0 at a grid α."""
    pair = ReluPair("b")
    eye = torch.eye(2, dtype=torch.float64)
    pair.configure((eye, eye), (torch.tensor([1.0, -0.5], dtype=torch.float64),
                                torch.tensor([1.0, 0.5], dtype=torch.float64)), (eye, 2 * eye))
    alphas = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
    out = pair.fill({ALPHAS_KEY: alphas, BIAS_KEY: torch.zeros(5, 2, dtype=torch.float64)},
                    torch.zeros(1, 2, dtype=torch.float64))["b.out"][:, 0]
    # unit 0: relu(1)·(1 + α); unit 1: relu(−0.5 + α)·(1 + α), zero up to α = 0.5
    expected = [[1.0, 0.0], [1.25, 0.0], [1.5, 0.0], [1.75, 0.25 * 1.75], [2.0, 0.5 * 2.0]]
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-15)


# ------------------------------------------------------------------------------------------ through the engine


class Pair(nn.Module):
    def __init__(self, act=F.relu):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 16), nn.Linear(16, 8), nn.Linear(8, 4)
        self.act = act

    def core(self, x):
        z = self.fc1(x)
        return z, self.act(z)

    def forward(self, x):
        z, h = self.core(x)
        return self.fc3(F.relu(self.fc2(h)))


class ModuleRelu(Pair):
    """The pair's output leaves through an nn.ReLU module, which the kernel can apply."""

    def __init__(self, inplace=False):
        super().__init__()
        self.act2 = nn.ReLU(inplace=inplace)

    def forward(self, x):
        z, h = self.core(x)
        return self.fc3(self.act2(self.fc2(h)))


class SkipFromSecond(ModuleRelu):
    def forward(self, x):
        z, h = self.core(x)
        y = self.fc2(h)
        return self.fc3(self.act2(y)) + y[:, :4]


class ScaledSecond(ModuleRelu):
    def forward(self, x):
        z, h = self.core(x)
        return self.fc3(self.act2(2 * self.fc2(h)))


class SkipFromFirst(Pair):
    def forward(self, x):
        z, h = self.core(x)
        return self.fc3(F.relu(self.fc2(h))) + z[:, :4]


class SkipFromRelu(Pair):
    def forward(self, x):
        z, h = self.core(x)
        return self.fc3(F.relu(self.fc2(h))) + h[:, :4]


class SecondTwice(Pair):
    def __init__(self):
        super().__init__()
        self.fc2 = nn.Linear(16, 16)
        self.fc3 = nn.Linear(16, 4)

    def forward(self, x):
        z, h = self.core(x)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc2(h)))))


def _endpoints(model, seed):
    torch.manual_seed(seed)
    start = copy.deepcopy(model).state_dict()
    end = {k: torch.randn_like(v) for k, v in start.items()}
    return start, end


def _reference(model, start, end, x, y, alphas):
    losses = []
    for a in alphas:
        net = copy.deepcopy(model)
        net.load_state_dict({k: (1 - a) * start[k] + a * end[k] for k in start})
        with torch.no_grad():
            losses.append(F.cross_entropy(net(x), y).item())
    return np.array(losses)


@pytest.mark.parametrize("model,pair,after", [
    (Pair(), "fc2", None),
    (Pair(act=nn.ReLU()), "fc2", None),
    (SkipFromFirst(), None, None),  # the first layer's output reaches the logits another way
    (SkipFromRelu(), None, None),  # so does the ReLU's
    (Pair(act=F.relu6), None, None),  # agrees with ReLU on small values only
    (Pair(act=functools.partial(F.relu6, inplace=True)), None, None),  # also when it works in place
    (Pair(act=F.leaky_relu), None, None),
    (SecondTwice(), None, None),
    (ModuleRelu(), "fc2", "act2"),  # the kernel applies the ReLU after the pair
    (ModuleRelu(inplace=True), "fc2", "act2"),
    (SkipFromSecond(), "fc2", None),  # not when the pair's output is read elsewhere too
    (ScaledSecond(), "fc2", None),  # nor when something comes between
], ids=["functional_relu", "module_relu", "skip_first", "skip_relu", "relu6", "relu6_inplace", "leaky",
        "second_twice", "relu_after", "relu_after_inplace", "skip_second", "scaled_second"])
def test_pair_found_only_where_exact(model, pair, after):
    start, end = _endpoints(model, 0)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(50, 6, generator=g), torch.randint(0, 4, (50,), generator=g)
    result = evaluate_line(model, start, end, (x, y), alphas=UNSORTED, progress=False)
    assert result.info["relu_pair"] == pair and result.info["relu_after_pair"] == after
    np.testing.assert_allclose(result.loss, _reference(model, start, end, x, y, UNSORTED), rtol=1e-5, atol=1e-6)


def test_float64_model_and_few_alphas():
    model = Pair().double()
    start, end = _endpoints(model, 2)
    x, y = torch.randn(30, 6, dtype=torch.float64), torch.randint(0, 4, (30,))
    result = evaluate_line(model, start, end, (x, y), alphas=UNSORTED, progress=False)
    assert result.info["relu_pair"] == "fc2"
    np.testing.assert_allclose(result.loss, _reference(model, start, end, x, y, UNSORTED), rtol=1e-12)
    assert evaluate_line(model, start, end, (x, y), points=4, progress=False).info["relu_pair"] is None


def test_in_place_relu_between_the_layers_does_not_corrupt_later_calls(monkeypatch):
    """With one α per vmapped call, every call of a batch reuses the batch's first-layer outputs."""
    from losspath.lines import engine

    monkeypatch.setattr(engine, "WORKING_SET", 1)
    model = Pair(act=nn.ReLU(inplace=True))
    start, end = _endpoints(model, 3)
    x, y = torch.randn(40, 6), torch.randint(0, 4, (40,))
    result = evaluate_line(model, start, end, (x, y), alphas=UNSORTED, progress=False, batch_size=40)
    assert result.info["relu_pair"] == "fc2" and result.info["per_call"] == 1
    np.testing.assert_allclose(result.loss, _reference(model, start, end, x, y, UNSORTED), rtol=1e-5, atol=1e-6)


class HalveInPlace(nn.Module):
    def forward(self, x):
        return x.mul_(0.5)


def test_in_place_op_after_a_held_first_layer_does_not_corrupt_later_calls(monkeypatch):
    """The same for the first-layer shortcut alone, whose held first layer's output is reused across calls."""
    from losspath.lines import engine

    monkeypatch.setattr(engine, "WORKING_SET", 1)
    model = nn.Sequential(nn.Linear(6, 16, bias=False), HalveInPlace(), nn.Linear(16, 4, bias=False))
    start, end = _endpoints(model, 4)
    x, y = torch.randn(40, 6), torch.randint(0, 4, (40,))
    result = evaluate_line(model, start, end, (x, y), alphas=UNSORTED, scheme=["2"], progress=False, batch_size=40,
                           relu_shortcut=False)
    assert result.info["first_layer"] == "0" and result.info["per_call"] == 1
    held_start = {**start, "0.weight": end["0.weight"]}  # scheme ["2"]: layer 0 is held at the end state
    expected = _reference(model, held_start, end, x, y, UNSORTED)
    np.testing.assert_allclose(result.loss, expected, rtol=1e-5, atol=1e-6)


def test_kernels_leave_torch_threads_alone():
    """The numba kernels share OpenMP with torch: after a ReLU-pair line torch's thread count had changed (and
    every later torch op in the process crawled). Torch keeps its count."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        g = torch.Generator().manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        start = {k: torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()}
        x, y = torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g)
        line = evaluate_line(model, start, model.state_dict(), (x, y), points=11, progress=False)
        assert line.info["relu_pair"]
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
