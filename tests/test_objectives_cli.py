"""`losspath line` with a user's own network and data given as MODULE:FUNCTION, and its --loss option."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import run_cli
from torch import nn

from losspath.checkpoints import save_state
from losspath.lines import evaluate_line

USER_CODE = '''
import torch
from torch import nn


def net():
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))


def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(40, 3, generator=g), torch.randn(40, 2, generator=g)


def splits():
    return {"train": data(), "test": data()}


def not_a_net():
    return 42
'''


@pytest.fixture
def user_project(tmp_path, monkeypatch):
    (tmp_path / "cli_user_nets.py").write_text(USER_CODE)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    end = {k: v + torch.randn(v.shape) for k, v in start.items()}
    save_state(tmp_path / "a.safetensors", start)
    save_state(tmp_path / "b.safetensors", end)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, generator=g), torch.randn(40, 2, generator=g)
    return tmp_path, evaluate_line(model, start, end, (x, y), points=5, loss="mse", progress=False)


@pytest.mark.parametrize("model,data", [("cli_user_nets:net", "cli_user_nets:data"),
                                        ("cli_user_nets.py:net", "cli_user_nets.py:splits")])
def test_line_with_the_users_module_factory_model_and_data(user_project, capsys, model, data):
    tmp_path, want = user_project
    code, out, err = run_cli(["line", "a.safetensors", "b.safetensors", "--model", model, "--data", data,
                              "--loss", "mse", "--points", "5", "--out", "line.csv", "-q"], capsys)
    assert code == 0, err
    frame = pd.read_csv(tmp_path / "line.csv")
    np.testing.assert_allclose(frame.loss, want.loss, rtol=1e-6)
    assert list(frame.columns) == ["alpha", "loss", "undefined", "undefined_reason"]
    assert "loss_max_increase" in out


@pytest.mark.parametrize("args,match", [
    (["--model", "no_such_module_xyz:net", "--data", "cli_user_nets:data"], "cannot import no_such_module_xyz"),
    (["--model", "cli_user_nets:missing", "--data", "cli_user_nets:data"], "has no function missing"),
    (["--model", "cli_user_nets:not_a_net", "--data", "cli_user_nets:data"], "must return a torch nn.Module"),
    (["--model", "lenet_300_100", "--data", "cli_user_nets:data"], "needs a --model MODULE:FUNCTION"),
    (["--model", "cli_user_nets:net", "--data", "cli_user_nets:data", "--loss", "hinge"], "loss must be one of"),
    (["--model", "cli_user_nets:net", "--data", "cli_user_nets:data", "--batchnorm", "recompute"],
     "needs training data"),
])
def test_user_code_mistakes_exit_2_with_one_sentence_and_write_nothing(user_project, capsys, args, match):
    tmp_path, _ = user_project
    code, _, err = run_cli(["line", "a.safetensors", "b.safetensors", "--points", "3", "--out", "line.csv", "-q",
                            *args], capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert match in err
    assert not (tmp_path / "line.csv").exists()
