"""Planes: evaluate_plane against a plain per-point load_state_dict loop (every BatchNorm mode), the plane
helpers against their definitions (Garipov et al. 2018, Goodfellow et al. 2015, Li et al. 2018), projections."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from losspath.errors import LosspathError
from losspath.planes import Plane, evaluate_plane, plane_through, project, random_plane, state_at, trajectory_plane
from losspath.planes.directions import dot, norm

CLASSES = 5
A_VALUES = [-0.5, 0.0, 0.4, 1.0]
B_VALUES = [-0.25, 0.0, 0.3, 0.6, 1.0, 1.3]  # ≥ 5 values: the rows take the ReLU-pair shortcut


class MLP(nn.Sequential):
    """Linear → ReLU → Linear at the input (the ReLU-pair shortcut applies), then a third layer."""

    def __init__(self):
        super().__init__(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 10), nn.ReLU(),
                         nn.Linear(10, CLASSES))


class BNConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, CLASSES)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.conv(x))).flatten(1))


def states(model_cls, count, seed=0):
    out = []
    for i in range(count):
        torch.manual_seed(seed + i)
        net = model_cls()
        if isinstance(net, BNConv):  # non-trivial running statistics
            net.bn.running_mean.uniform_(-0.5, 0.5)
            net.bn.running_var.uniform_(0.5, 2.0)
            net.bn.num_batches_tracked.fill_(7 + i)
        out.append({k: t.clone() for k, t in net.state_dict().items()})
    return out


def plain_point(model, state, x, y, train=None):
    """The textbook evaluation of one state: load_state_dict, optionally re-estimate BN (momentum=None over
    batches of 128, BN in train mode), mean cross-entropy and error."""
    net = copy.deepcopy(model)
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        if train is not None:
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.reset_running_stats()
                    m.momentum = None
                    m.train()
            for i in range(0, len(train), 128):
                net(train[i : i + 128])
            net.eval()
        logits = net(x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) != y).float().mean().item()


def plain_plane(model, plane, a_values, b_values, x, y, bn="interpolate", train=None):
    loss = np.zeros((len(a_values), len(b_values)))
    error = np.zeros_like(loss)
    for i, a in enumerate(a_values):
        for j, b in enumerate(b_values):
            state = state_at(plane, a, b)
            if bn == "origin":
                state |= {k: plane.origin[k] for k in state if k.endswith(("running_mean", "running_var"))}
            loss[i, j], error[i, j] = plain_point(model, state, x, y, train if bn == "recompute" else None)
    return loss, error


@pytest.fixture
def mlp_data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(300, 12, generator=g), torch.randint(0, CLASSES, (300,), generator=g)


@pytest.fixture
def conv_data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 3, 4, 4, generator=g)
    return x, torch.randint(0, CLASSES, (200,), generator=g), torch.randn(300, 3, 4, 4, generator=g)


def test_plane_equals_plain_loop_mlp(mlp_data):
    x, y = mlp_data
    plane = plane_through(*states(MLP, 3))
    result = evaluate_plane(MLP(), plane, (x, y), grid=(A_VALUES, B_VALUES), progress=False)
    loss, error = plain_plane(MLP(), plane, A_VALUES, B_VALUES, x, y)
    assert result.loss.shape == (4, 6) and result.error.shape == (4, 6)
    assert result.info["row_plan"]["relu_pair"] == "3"  # the fast path ran, and still agrees
    np.testing.assert_allclose(result.loss, loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.error, error, atol=1e-9)
    assert not result.undefined.any()
    # a net without BatchNorm has no statistics to recompute or hold: every mode gives the same numbers
    for bn in ("recompute", "origin"):
        other = evaluate_plane(MLP(), plane, (x, y), grid=(A_VALUES, B_VALUES), batchnorm=bn, train_data=(x, y),
                               progress=False)
        np.testing.assert_array_equal(other.loss, result.loss)


@pytest.mark.parametrize("bn", ["interpolate", "origin", "recompute"])
def test_plane_equals_plain_loop_batchnorm(conv_data, bn):
    x, y, train = conv_data
    s = states(BNConv, 3)
    plane = plane_through(*s)
    a_values, b_values = [-0.2, 0.0, 0.5, 1.0], [0.0, 0.5, 1.2]
    result = evaluate_plane(BNConv(), plane.origin, plane.u, plane.v, (x, y), grid=(a_values, b_values),
                            batchnorm=bn, train_data=(train, torch.zeros(len(train), dtype=torch.long)) if bn == "recompute" else None,
                            progress=False)
    loss, error = plain_plane(BNConv(), plane, a_values, b_values, x, y, bn, train)
    np.testing.assert_allclose(result.loss, loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.error, error, atol=1e-9)
    if bn == "interpolate":  # the statistics do move with (a, b): holding them gives other values
        held, _ = plain_plane(BNConv(), plane, a_values, b_values, x, y, "origin")
        assert np.abs(held - loss).max() > 1e-3


def test_plane_flags_negative_variance(conv_data):
    x, y, _ = conv_data
    origin = states(BNConv, 1)[0]
    u = {k: torch.zeros_like(t, dtype=torch.float64) for k, t in origin.items() if t.is_floating_point()}
    v = dict(u)
    u["bn.running_var"] = -origin["bn.running_var"].double()  # variance (1 − a)·var: negative for a > 1
    result = evaluate_plane(BNConv(), origin, u, v, (x, y), grid=([0.0, 0.5, 1.5], [0.0, 1.0]), progress=False)
    assert result.undefined.tolist() == [[False, False], [False, False], [True, True]]
    assert np.isnan(result.loss[2]).all() and np.isfinite(result.loss[:2]).all()
    assert "negative BatchNorm running variance" in result.undefined_reason[2][0]
    frame = result.to_frame()
    assert list(frame.columns[:4]) == ["a", "b", "loss", "error"] and len(frame) == 6
    assert frame["undefined"].sum() == 2


def test_plane_through_coordinates():
    s = states(MLP, 3)
    plane = plane_through(*s)
    assert abs(norm(plane.u) - 1) < 1e-12 and abs(norm(plane.v) - 1) < 1e-12 and abs(dot(plane.u, plane.v)) < 1e-12
    for label, state in zip(("θ1", "θ2", "θ3"), s):
        a, b = plane.points[label]
        rebuilt = state_at(plane, a, b)
        for k in state:
            torch.testing.assert_close(rebuilt[k], state[k], rtol=0, atol=1e-5)
    coords, dist = project(plane, s)
    np.testing.assert_allclose(coords, [plane.points[k] for k in ("θ1", "θ2", "θ3")], atol=1e-9)
    np.testing.assert_allclose(dist, 0, atol=1e-4)
    assert plane.points["θ2"][0] == pytest.approx(norm({k: s[1][k].double() - s[0][k].double() for k in s[0]}), rel=1e-9)


def toy_trajectory():
    """float64 states on a known plane: θ_t = θ_0 + t·e1 + h(t)·e2, plus 0.5·e3 at t = 3 (off the plane)."""
    torch.manual_seed(0)
    w, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    e1, e2, e3 = torch.eye(3, dtype=torch.float64)
    heights = [0.0, 1.0, 2.0, 1.0, 0.0]
    return [{"w": w, "b": b + t * e1 + h * e2 + (0.5 if t == 3 else 0.0) * e3, "steps": torch.tensor(t)}
            for t, h in enumerate(heights)]


def test_trajectory_plane_definitions():
    traj = toy_trajectory()
    for second in ("pca", "max_residual"):
        plane = trajectory_plane(traj, second=second)
        assert plane.points["init"] == pytest.approx((0.0, 0.0), abs=1e-12)
        assert plane.points["final"] == pytest.approx((4.0, 0.0), abs=1e-12)
        torch.testing.assert_close(plane.u["b"], torch.tensor([1.0, 0, 0], dtype=torch.float64))
    # the largest residual is at t = 2: exactly e2
    torch.testing.assert_close(trajectory_plane(traj, second="max_residual").v["b"].abs(),
                               torch.tensor([0, 1.0, 0], dtype=torch.float64))
    # residuals (1,0), (2,0), (1,0.5) in (e2, e3): first PC of [[1,0],[2,0],[1,.5]] by hand
    residuals = np.array([[1.0, 0.0], [2.0, 0.0], [1.0, 0.5]])
    pc = np.linalg.svd(residuals)[2][0]
    v = trajectory_plane(traj).v["b"].numpy()
    np.testing.assert_allclose(np.abs(v[1:]), np.abs(pc), atol=1e-12)
    coords, dist = project(trajectory_plane(traj, second="max_residual"), traj)
    np.testing.assert_allclose(coords[:, 0], [0, 1, 2, 3, 4], atol=1e-12)
    np.testing.assert_allclose(np.abs(coords[:, 1]), [0, 1, 2, 1, 0], atol=1e-12)
    np.testing.assert_allclose(dist, [0, 0, 0, 0.5, 0], atol=1e-12)


def test_random_plane_filter_normalized():
    state = states(BNConv, 1)[0]
    plane = random_plane(state, seed=3)
    for d in (plane.u, plane.v):
        w = state["conv.weight"].double()
        np.testing.assert_allclose(d["conv.weight"].reshape(4, -1).norm(dim=1), w.reshape(4, -1).norm(dim=1),
                                   rtol=1e-9)
        np.testing.assert_allclose(d["fc.weight"].norm(dim=1), state["fc.weight"].double().norm(dim=1), rtol=1e-9)
        for k in ("conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "fc.bias"):
            assert torch.count_nonzero(d[k]) == 0
        assert "bn.num_batches_tracked" not in d
    assert not torch.equal(plane.u["fc.weight"], plane.v["fc.weight"])
    again = random_plane(state, seed=3)
    assert torch.equal(again.u["conv.weight"], plane.u["conv.weight"])
    kept = random_plane(state, seed=3, ignore=None)
    assert torch.equal(kept.u["bn.running_var"], state["bn.running_var"].double())


def test_plane_bad_input(mlp_data):
    x, y = mlp_data
    s = states(MLP, 3)
    plane = plane_through(*s)
    with pytest.raises(LosspathError, match="batchnorm must be one of"):
        evaluate_plane(MLP(), plane, (x, y), grid=([0], [0]), batchnorm="start")
    with pytest.raises(LosspathError, match="finite"):
        evaluate_plane(MLP(), plane, (x, y), grid=([0, np.nan], [0]))
    with pytest.raises(LosspathError, match="lacks floating entries"):
        evaluate_plane(MLP(), s[0], {"1.weight": plane.u["1.weight"]}, plane.v, (x, y), grid=([0], [0]))
    with pytest.raises(LosspathError, match="does not take scheme"):
        evaluate_plane(MLP(), plane, (x, y), grid=([0], [0]), scheme="weights")
    with pytest.raises(LosspathError, match="zero"):
        plane_through(s[0], s[0], s[1])
    with pytest.raises(LosspathError, match="spans no plane"):
        trajectory_plane([s[0], {k: (s[0][k] + s[1][k]) / 2 for k in s[0]}, s[1]])
    with pytest.raises(LosspathError, match="at least 3"):
        trajectory_plane(s[:2])
    with pytest.raises(LosspathError, match="parallel"):
        project(Plane(s[0], plane.u, plane.u), s)


def test_plane_command(tmp_path, capsys):
    """`losspath plane RUN_DIR`: the trajectory plane of the run's checkpoints, CSV equal to the library's values;
    three states; bad input is one sentence and exit code 2."""
    import pandas as pd

    from helpers import run_cli
    from losspath import build_model, load_dataset
    from losspath.store import Run

    code, out, _ = run_cli(["train", "--data", "digits", "--model", "mlp_16", "--steps", "12it", "--checkpoints",
                            "every:3", "--root", str(tmp_path), "--quiet"], capsys)
    run_dir = out.strip()
    code, out, err = run_cli(["plane", run_dir, "--points", "5", "--out", str(tmp_path / "p.csv"), "--plot",
                              str(tmp_path / "p.png"), "--quiet"], capsys)
    assert code == 0, err
    assert "25 points (0 undefined)" in out
    frame, path = pd.read_csv(tmp_path / "p.csv"), pd.read_csv(tmp_path / "p_path.csv")
    assert list(frame.columns) == ["a", "b", "loss", "error", "undefined", "undefined_reason"] and len(frame) == 25
    run = Run.open(run_dir)
    assert path.step.tolist() == run.saved_steps() == [0, 3, 6, 9, 12]
    plane = trajectory_plane([run.load_checkpoint(s) for s in run.saved_steps()])
    data = load_dataset("digits")
    a, b = sorted(set(frame.a)), sorted(set(frame.b))
    direct = evaluate_plane(build_model("mlp_16", data.input_shape, 10), plane, data.test, grid=(a, b),
                            progress=False)
    np.testing.assert_allclose(frame.loss.to_numpy().reshape(5, 5), direct.loss, rtol=1e-9)
    assert path.a.iloc[0] == 0 and path.b.iloc[-1] == pytest.approx(0, abs=1e-9)
    assert (tmp_path / "p.png").is_file() and (tmp_path / "p.pdf").is_file()
    refs = [f"{run_dir}@0", f"{run_dir}@6", f"{run_dir}@last"]
    code, out, err = run_cli(["plane", *refs, "--points", "3", "--quiet"], capsys)
    assert code == 0 and "9 points" in out
    for args, message in ((refs[:2], "not 2 arguments"), ([run_dir, "--points", "1"], "--points must be"),
                          ([run_dir, "--batchnorm", "end"], "--batchnorm must be one of"),
                          ([f"{run_dir}/step_0.safetensors"], "--model and --data")):
        code, _, err = run_cli(["plane", *args, "--quiet"], capsys)
        assert code == 2 and message in err and err.count("\n") == 1


def test_plane_metrics_and_mse(mlp_data):
    """The objective options reach every row: a user metric and the mse loss, against a plain loop."""
    x, y = mlp_data
    plane = plane_through(*states(MLP, 3))
    a_values, b_values = [0.0, 0.7], [0.0, 0.5, 1.0]
    target = F.one_hot(y, CLASSES).float()
    result = evaluate_plane(MLP(), plane, (x, target), grid=(a_values, b_values), loss="mse",
                            metrics={"top": lambda pred, t: pred.max(1).values}, progress=False)
    assert sorted(result.metrics) == ["top"] and np.isnan(result.error).all()
    net = MLP()
    for i, a in enumerate(a_values):
        for j, b in enumerate(b_values):
            net.load_state_dict(state_at(plane, a, b))
            with torch.no_grad():
                out = net(x)
            assert result.loss[i, j] == pytest.approx(F.mse_loss(out, target).item(), rel=1e-5)
            assert result.metrics["top"][i, j] == pytest.approx(out.max(1).values.mean().item(), rel=1e-5)


pytestmark = pytest.mark.usefixtures("one_torch_thread")
