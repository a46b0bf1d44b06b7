"""Undefined points of a line (not a valid network, or NaN output) are NaN with a reason, never numbers; overflow
at a valid state stays inf; summaries leave undefined points out; figures draw them as gaps."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from losspath.lines import LineResult, evaluate_line
from losspath.lines.undefined import NAN_OUTPUT, NEGATIVE_VARIANCE
from losspath.metrics import barrier, is_monotone, lucas_delta, max_increase, plateau_end, summarize


class BNClassifier(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def bn_endpoints():
    """Running variance 2.0 at the start and 0.5 at the end: (1 − α)·2 + α·0.5 < 0 for α > 4/3."""
    torch.manual_seed(0)
    start, end = BNClassifier().state_dict(), BNClassifier().state_dict()
    start = {k: v.clone() for k, v in start.items()}
    start["1.running_var"] = torch.full((6,), 2.0)
    end["1.running_var"] = torch.full((6,), 0.5)
    return start, end


def plain_loss_and_error(model_cls, state, x, y):
    net = model_cls()
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        logits = net(x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) != y).float().mean().item()


def test_negative_batchnorm_variance_is_undefined_not_inf():
    start, end = bn_endpoints()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(60, 4, generator=g), torch.randint(0, 3, (60,), generator=g)
    alphas = [0.0, 0.5, 1.0, 1.3, 1.5, 2.0]
    result = evaluate_line(BNClassifier(), start, end, (x, y), alphas=alphas, progress=False)
    np.testing.assert_array_equal(result.undefined, [False, False, False, False, True, True])
    assert result.undefined_reason[4] == result.undefined_reason[5] == f"{NEGATIVE_VARIANCE} (1)"
    assert np.isnan(result.loss[4:]).all() and np.isnan(result.error[4:]).all()
    assert (result.class_counts[4:] == 0).all()
    for i, a in enumerate(alphas[:4]):  # the defined points are scored as before
        state = {k: (1 - a) * start[k] + a * end[k] if v.is_floating_point() else end[k] for k, v in start.items()}
        loss, error = plain_loss_and_error(BNClassifier, state, x, y)
        assert result.loss[i] == pytest.approx(loss, rel=1e-5) and result.error[i] == pytest.approx(error)
    frame = pd.read_csv(pd.io.common.StringIO(result.to_frame().to_csv(index=False)))
    assert frame.undefined.tolist() == [False] * 4 + [True] * 2
    reason = f"{NEGATIVE_VARIANCE} (1)"
    assert frame.undefined_reason.fillna("").tolist()[3:] == ["", reason, reason]
    assert frame.loss[4:].isna().all() and frame.error[4:].isna().all()


def test_undefined_points_are_left_out_of_the_summary():
    start, end = bn_endpoints()
    x, y = torch.randn(30, 4), torch.randint(0, 3, (30,))
    alphas = [0.0, 0.5, 1.0, 1.5]
    result = evaluate_line(BNClassifier(), start, end, (x, y), alphas=alphas, progress=False)
    summary = result.summary()
    assert summary["undefined_points"] == 1
    assert summary == {**summarize(alphas[:3], result.loss[:3], "loss"),
                       **summarize(alphas[:3], result.error[:3], "error"), "undefined_points": 1,
                       "distance": result.distance, "relative_distance": result.relative_distance}


class SqrtScale(nn.Module):
    """Logits scaled by sqrt(s): NaN where the interpolated s is negative, although every weight is finite."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.s = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.fc(x) * torch.sqrt(self.s)


def test_nan_output_of_a_valid_state_is_undefined_with_its_reason():
    torch.manual_seed(0)
    start = {k: v.clone() for k, v in SqrtScale().state_dict().items()}
    end = {**{k: v.clone() for k, v in SqrtScale().state_dict().items()}, "s": torch.tensor(0.25)}
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    alphas = [0.0, 1.0, 1.2, 1.5]  # s = 1, 0.25, 0.1, −0.125
    for vectorize in (True, False):
        result = evaluate_line(SqrtScale(), start, end, (x, y), alphas=alphas, progress=False, vectorize=vectorize)
        np.testing.assert_array_equal(result.undefined, [False, False, False, True])
        assert result.undefined_reason == ["", "", "", NAN_OUTPUT]
        assert math.isnan(result.loss[3]) and math.isnan(result.error[3])
        net = SqrtScale()
        net.load_state_dict({k: -0.2 * start[k] + 1.2 * end[k] for k in start})  # α = 1.2
        with torch.no_grad():
            assert result.loss[2] == pytest.approx(F.cross_entropy(net(x), y).item(), rel=1e-5)


def test_overflow_at_a_valid_state_keeps_inf_loss_and_is_not_undefined():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    start = {k: v.clone() for k, v in net.state_dict().items()}
    end = {k: 1e30 * v for k, v in start.items()}  # float32 overflows (NaN from inf − inf); float64 does not
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    result = evaluate_line(net, start, end, (x, y), points=3, progress=False)
    net.load_state_dict(end)
    with torch.no_grad():
        assert torch.isnan(net(x)).any()  # the float32 forward at the end gives NaN logits
    assert math.isinf(result.loss[-1]) and not result.undefined.any()
    assert result.undefined_reason == ["", "", ""]


def test_curve_summaries_skip_nan_points():
    nan = math.nan
    assert max_increase([1.0, nan, 3.0, 2.0]) == 2.0
    assert max_increase([nan, 1.0, 3.0]) == 2.0  # measured from the first defined point
    assert lucas_delta([2.0, 1.0, nan, 1.5]) == 0.5
    assert barrier([0.0, 0.5, 1.0, 1.5], [1.0, 2.0, 1.0, nan]) == 1.0  # chord between α = 0 and α = 1
    assert is_monotone([3.0, nan, 2.0, 1.0]) and not is_monotone([nan, nan])
    assert plateau_end([0.0, 0.25, 0.5, 1.0], [2.0, nan, 1.0, 0.0]) == 0.5
    assert all(math.isnan(f([nan, nan])) for f in (max_increase, lucas_delta))
    assert math.isnan(barrier([0, 1], [nan, nan])) and math.isnan(plateau_end([0, 1], [nan, nan]))


def test_line_figure_draws_undefined_points_as_gaps(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from losspath.plots import line as line_plot

    result = LineResult(alphas=np.array([0.0, 0.5, 1.0, 1.5]), loss=np.array([2.0, 1.0, 0.5, np.nan]),
                        error=np.array([0.6, 0.3, 0.1, np.nan]), class_counts=np.zeros((4, 3), dtype=np.int64),
                        undefined=np.array([False, False, False, True]),
                        undefined_reason=["", "", "", NEGATIVE_VARIANCE])
    figures = []
    monkeypatch.setattr(line_plot, "save_figure", lambda fig, path: figures.append(fig) or [])
    line_plot.plot_line(result, tmp_path / "line")
    loss_axis, error_axis = figures[0].axes
    curve, marks = loss_axis.lines
    assert np.isnan(curve.get_ydata()[3])  # matplotlib breaks the curve at NaN: nothing is drawn past α = 1
    assert list(marks.get_xdata()) == [1.5] and marks.get_label() == "undefined"
    assert error_axis.get_ylabel() == "Test error"
    plt.close("all")
    monkeypatch.undo()
    assert line_plot.plot_line(result, tmp_path / "line")[0].is_file()
