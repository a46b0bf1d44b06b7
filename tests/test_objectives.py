"""Objectives, batch and output types of the line engine, each against a plain per-α loop (load_state_dict,
forward, score by hand), through the vectorized path and through the one-α-at-a-time fallback."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from losspath.errors import LosspathError
from losspath.lines import evaluate_line

ALPHAS = [-0.5, 0.0, 0.25, 0.6, 1.0, 1.4]
VOCAB, T = 11, 9


def random_endpoints(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    end = {k: (v + 0.7 * torch.randn(v.shape, generator=g)) if v.is_floating_point() else v.clone()
           for k, v in start.items()}
    return start, end


def plain_curve(model, start, end, batches, alphas, score):
    """Σ values / Σ weights per α, from score(output, batch) → (sum, weight), over the batches."""
    curve = []
    for a in alphas:
        net = copy.deepcopy(model)
        net.load_state_dict({k: (1 - a) * start[k] + a * end[k] if start[k].is_floating_point() else end[k]
                             for k in start})
        net.eval()
        total = weight = 0.0
        with torch.no_grad():
            for batch in batches:
                s, w = score(net, batch)
                total, weight = total + s, weight + w
        curve.append(total / weight)
    return np.array(curve)


class DataDependent(nn.Module):
    """Wraps a model with control flow on its (α-dependent) output: torch.func.vmap cannot run it."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        if isinstance(out, torch.Tensor):
            logits = out
        else:
            logits = out[0] if isinstance(out, tuple) else (out["logits"] if isinstance(out, dict) else out.logits)
        if logits.sum() > 1e30:  # never true, but vmap cannot decide it
            raise RuntimeError("unreachable")
        return out


def run_both_paths(make_model, start, end, data, **kwargs):
    """The line through the vectorized path and through the fallback (a model vmap cannot run)."""
    fast = evaluate_line(make_model(), start, end, data, alphas=ALPHAS, progress=False, **kwargs)
    wrapped = {f"inner.{k}": v for k, v in start.items()}, {f"inner.{k}": v for k, v in end.items()}
    with pytest.warns(UserWarning, match="vmap"):
        slow = evaluate_line(DataDependent(make_model()), *wrapped, data, alphas=ALPHAS, progress=False, **kwargs)
    assert fast.info["path"] == "vectorized" and fast.info["fallback"] is None
    assert slow.info["path"] == "one alpha at a time" and "data-dependent control flow" in slow.info["fallback"]
    return fast, slow


# ------------------------------------------------------------------------------------------- regression (mse)


class Regressor(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))


def regression_data(n=70, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randn(n, 3, generator=g)


def test_mse_matches_plain_loop_on_both_paths_and_with_the_relu_pair_shortcut():
    torch.manual_seed(0)
    start, end = random_endpoints(Regressor())
    x, y = regression_data()
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 70, 32)]
    want = plain_curve(Regressor(), start, end, batches, ALPHAS,
                       lambda net, b: (F.mse_loss(net(b[0]), b[1], reduction="sum").item(), b[1].numel()))
    fast, slow = run_both_paths(Regressor, start, end, (x, y), loss="mse", batch_size=32)
    assert fast.info["relu_pair"] == "2"  # the shortcut is exact for any objective: the same forward
    for result in (fast, slow):
        np.testing.assert_allclose(result.loss, want, rtol=1e-5)
        assert result.metrics == {} and result.class_counts.shape == (len(ALPHAS), 0)
        assert list(result.to_frame().columns) == ["alpha", "loss", "undefined", "undefined_reason"]
    no_shortcuts = evaluate_line(Regressor(), start, end, (x, y), alphas=ALPHAS, loss="mse", progress=False,
                                 first_layer_shortcut=False)
    np.testing.assert_allclose(no_shortcuts.loss, want, rtol=1e-5)


def test_mse_reshapes_targets_of_the_same_size_and_rejects_others():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    start, end = random_endpoints(model)
    x, y = torch.randn(20, 4), torch.randn(20)
    result = evaluate_line(model, start, end, (x, y), alphas=[0.0, 1.0], loss="mse", progress=False)
    with torch.no_grad():
        assert result.loss[1] == pytest.approx(F.mse_loss(F.linear(x, end["weight"], end["bias"])[:, 0], y).item(),
                                               rel=1e-6)
    with pytest.raises(LosspathError, match="mse.*one target per output"):
        evaluate_line(model, start, end, (x, torch.randn(20, 2)), points=3, loss="mse", progress=False)


# --------------------------------------------------------------------------- causal language model, -100 ignored


class TinyLM(nn.Module):
    """Embedding → causal mean of the past → MLP → vocabulary logits; returns an object with `.logits`."""

    class Output:
        def __init__(self, logits):
            self.logits = logits

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8)
        self.norm = nn.LayerNorm(8)
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, VOCAB))

    def forward(self, input_ids, attention_mask=None):
        h = self.embed(input_ids)
        steps = torch.arange(1, input_ids.shape[1] + 1, device=h.device).view(1, -1, 1)
        h = self.norm(h.cumsum(1) / steps)
        return TinyLM.Output(self.mlp(h))


def lm_data(n=30, seed=3):
    """Token sequences with padding at the end of some rows: labels −100 there."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n, T), generator=g)
    lengths = torch.randint(3, T + 1, (n,), generator=g)
    mask = (torch.arange(T).view(1, -1) < lengths.view(-1, 1)).long()
    labels = torch.where(mask.bool(), ids, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def lm_reference(net, batch):
    logits = net(batch["input_ids"], batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    total = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100, reduction="sum")
    return total.item(), int((labels != -100).sum())


def lm_error_reference(net, batch):
    logits = net(batch["input_ids"], batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    scored = labels != -100
    return int(((logits.argmax(-1) != labels) & scored).sum()), int(scored.sum())


def test_lm_cross_entropy_is_the_mean_over_every_scored_token_on_both_paths():
    torch.manual_seed(0)
    start, end = random_endpoints(TinyLM())
    data = lm_data()
    batches = [{k: v[i : i + 8] for k, v in data.items()} for i in range(0, 30, 8)]
    want = plain_curve(TinyLM(), start, end, batches, ALPHAS, lm_reference)
    want_error = plain_curve(TinyLM(), start, end, batches, ALPHAS, lm_error_reference)
    # the data-set mean, not the mean of batch means: batches hold different numbers of scored tokens
    assert len({lm_reference(TinyLM(), b)[1] for b in batches}) > 1
    fast, slow = run_both_paths(TinyLM, start, end, data, loss="lm_cross_entropy", batch_size=8)
    for result in (fast, slow):
        np.testing.assert_allclose(result.loss, want, rtol=1e-5)
        np.testing.assert_allclose(result.error, want_error, rtol=1e-12)
        assert result.info["first_layer"] is None and result.objective == "lm_cross_entropy"


def test_lm_cross_entropy_from_a_dataloader_of_dict_batches():
    torch.manual_seed(0)
    start, end = random_endpoints(TinyLM())
    data = lm_data()
    rows = [{k: v[i] for k, v in data.items()} for i in range(30)]
    loader = DataLoader(rows, batch_size=7)
    tensors = evaluate_line(TinyLM(), start, end, data, alphas=ALPHAS, loss="lm_cross_entropy", progress=False)
    batches = evaluate_line(TinyLM(), start, end, loader, alphas=ALPHAS, loss="lm_cross_entropy", progress=False)
    np.testing.assert_allclose(batches.loss, tensors.loss, rtol=1e-6)
    assert batches.num_examples == 30


def test_lm_shape_mismatch_and_all_ignored_labels_are_one_sentence():
    torch.manual_seed(0)
    start, end = random_endpoints(TinyLM())
    data = lm_data()
    with pytest.raises(LosspathError, match="lm_cross_entropy. needs"):
        evaluate_line(TinyLM(), start, end, {**data, "labels": data["labels"][:, :4]}, points=3,
                      loss="lm_cross_entropy", progress=False)
    with pytest.raises(LosspathError, match="No example of the data is scored"):
        evaluate_line(TinyLM(), start, end, {**data, "labels": torch.full_like(data["labels"], -100)}, points=3,
                      loss="lm_cross_entropy", progress=False)


# ---------------------------------------------------------------- dict batches, several inputs, dict/tuple outputs


class DictClassifier(nn.Module):
    """Keyword inputs (features, mask) → {"logits": ..., "hidden": ...}."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 12), nn.Linear(12, 4)

    def forward(self, features, mask):
        h = torch.relu(self.fc1(features * mask))
        return {"hidden": h, "logits": self.fc2(h)}


class TwoInputs(nn.Module):
    """Two positional inputs → (logits, auxiliary)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = nn.Linear(6, 10), nn.Linear(3, 10), nn.Linear(10, 4)

    def forward(self, x1, x2):
        h = torch.tanh(self.a(x1) + self.b(x2))
        return self.out(h), h


def classification_reference(logits, y):
    return F.cross_entropy(logits, y, reduction="sum").item(), len(y)


def test_dict_batches_with_a_named_target_key_and_dict_outputs_on_both_paths():
    torch.manual_seed(0)
    start, end = random_endpoints(DictClassifier())
    g = torch.Generator().manual_seed(5)
    data = {"features": torch.randn(50, 6, generator=g), "mask": (torch.rand(50, 6, generator=g) > 0.2).float(),
            "label": torch.randint(0, 4, (50,), generator=g)}
    batches = [{k: v[i : i + 16] for k, v in data.items()} for i in range(0, 50, 16)]
    want = plain_curve(DictClassifier(), start, end, batches, ALPHAS, lambda net, b: classification_reference(
        net(b["features"], b["mask"])["logits"], b["label"]))
    fast, slow = run_both_paths(DictClassifier, start, end, data, target_key="label", batch_size=16)
    for result in (fast, slow):
        np.testing.assert_allclose(result.loss, want, rtol=1e-5)
        assert (result.class_counts.sum(1) == 50).all()
    with pytest.raises(LosspathError, match="needs a 'labels' entry"):
        evaluate_line(DictClassifier(), start, end, data, points=3, progress=False)


def test_several_positional_inputs_and_tuple_outputs_on_both_paths():
    torch.manual_seed(0)
    start, end = random_endpoints(TwoInputs())
    g = torch.Generator().manual_seed(6)
    x1, x2 = torch.randn(40, 6, generator=g), torch.randn(40, 3, generator=g)
    y = torch.randint(0, 4, (40,), generator=g)
    batches = [(x1[i : i + 16], x2[i : i + 16], y[i : i + 16]) for i in range(0, 40, 16)]
    want = plain_curve(TwoInputs(), start, end, batches, ALPHAS,
                       lambda net, b: classification_reference(net(b[0], b[1])[0], b[2]))
    fast, slow = run_both_paths(TwoInputs, start, end, (x1, x2, y), batch_size=16)
    for result in (fast, slow):
        np.testing.assert_allclose(result.loss, want, rtol=1e-5)
    picked = evaluate_line(TwoInputs(), start, end, (x1, x2, y), alphas=ALPHAS, progress=False,
                           output=lambda out: out[0])
    np.testing.assert_allclose(picked.loss, want, rtol=1e-5)


def test_an_output_without_a_prediction_tensor_is_one_sentence():
    class Named(DictClassifier):
        def forward(self, features, mask):
            return {"scores": super().forward(features, mask)["logits"]}

    model = Named()
    data = {"features": torch.randn(8, 6), "mask": torch.ones(8, 6), "labels": torch.zeros(8, dtype=torch.long)}
    with pytest.raises(LosspathError, match="keys scores.*output="):
        evaluate_line(model, model.state_dict(), model.state_dict(), data, points=3, progress=False)
    result = evaluate_line(model, model.state_dict(), model.state_dict(), data, points=3, progress=False,
                           output="scores")
    assert np.isfinite(result.loss).all()


# ------------------------------------------------------------------------------ user losses and named metrics


def test_user_loss_with_weights_and_named_metrics_on_both_paths():
    torch.manual_seed(0)
    start, end = random_endpoints(Regressor())
    x, y = regression_data(45, 7)
    weights = torch.linspace(0.5, 2.0, 45)
    target = torch.cat([y, weights.view(-1, 1)], 1)  # the weight travels with each example

    def weighted_abs(pred, t):
        return (pred - t[:, :3]).abs().sum(1), t[:, 3]

    def max_abs(pred, t):
        return (pred - t[:, :3]).abs().amax(1)

    def reference(stat):
        def score(net, b):
            err = (net(b[0]) - b[1][:, :3]).abs()
            if stat == "weighted":
                return float((err.sum(1) * b[1][:, 3]).sum()), float(b[1][:, 3].sum())
            return float(err.amax(1).sum()), len(b[0])
        return score

    batches = [(x[i : i + 16], target[i : i + 16]) for i in range(0, 45, 16)]
    want = plain_curve(Regressor(), start, end, batches, ALPHAS, reference("weighted"))
    want_max = plain_curve(Regressor(), start, end, batches, ALPHAS, reference("max"))
    fast, slow = run_both_paths(Regressor, start, end, (x, target), loss=weighted_abs,
                                metrics={"max_abs": max_abs}, batch_size=16)
    for result in (fast, slow):
        np.testing.assert_allclose(result.loss, want, rtol=1e-5)
        np.testing.assert_allclose(result.metrics["max_abs"], want_max, rtol=1e-5)
        assert list(result.to_frame().columns)[:3] == ["alpha", "loss", "max_abs"]
        assert {"max_abs_max_increase", "max_abs_barrier", "loss_plateau_end"} <= set(result.summary())


def test_extra_metrics_keep_the_default_classification_numbers():
    torch.manual_seed(0)
    start, end = random_endpoints(TwoInputs())
    x1, x2, y = torch.randn(30, 6), torch.randn(30, 3), torch.randint(0, 4, (30,))
    plain = evaluate_line(TwoInputs(), start, end, (x1, x2, y), alphas=ALPHAS, progress=False)
    more = evaluate_line(TwoInputs(), start, end, (x1, x2, y), alphas=ALPHAS, progress=False,
                         metrics={"margin": lambda logits, t: logits.gather(1, t.view(-1, 1))[:, 0]})
    np.testing.assert_array_equal(more.loss, plain.loss)
    np.testing.assert_array_equal(more.error, plain.error)
    assert list(more.metrics) == ["error", "margin"]


@pytest.mark.parametrize("kwargs,match", [
    (dict(loss="hinge"), "loss must be one of"),
    (dict(loss=lambda p, t: F.cross_entropy(p, t)), "one value per example"),
    (dict(metrics={"error": lambda p, t: p[:, 0]}), "'error' is taken"),
    (dict(metrics={"loss": lambda p, t: p[:, 0]}), "'loss' is taken"),
    (dict(metrics={"m": lambda p, t: (p[:, 0], torch.ones(3))}), "weights must have"),
    (dict(loss=lambda p, t: p.missing), "loss function fails"),
])
def test_bad_losses_and_metrics_are_one_sentence(kwargs, match):
    model = TwoInputs()
    data = (torch.randn(8, 6), torch.randn(8, 3), torch.randint(0, 4, (8,)))
    with pytest.raises(LosspathError, match=match):
        evaluate_line(model, model.state_dict(), model.state_dict(), data, points=3, progress=False, **kwargs)


# ----------------------------------------------------------------------- norms and tied weights move like weights


class Normed(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.ln, self.conv, self.gn = nn.Linear(6, 8), nn.LayerNorm(8), nn.Conv1d(1, 4, 3), nn.GroupNorm(2, 4)
        self.fc2 = nn.Linear(24, 3)

    def forward(self, x):
        h = self.ln(torch.relu(self.fc1(x))).unsqueeze(1)
        return self.fc2(torch.relu(self.gn(self.conv(h))).flatten(1))


@pytest.mark.parametrize("scheme", ["all", "weights", "homogeneous"])
def test_layernorm_and_groupnorm_parameters_move_like_weights(scheme):
    torch.manual_seed(0)
    start, end = random_endpoints(Normed())
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    depth = {"fc1": 1, "ln": 2, "conv": 3, "gn": 4, "fc2": 5}

    def coefficient(key, a):
        module, last = key.rsplit(".", 1)
        if last == "bias" and scheme == "weights":
            return 1.0  # held at the end
        return a ** depth[module] if last == "bias" and scheme == "homogeneous" else a

    def score(a):
        net = Normed()
        net.load_state_dict({k: (1 - coefficient(k, a)) * start[k] + coefficient(k, a) * end[k] for k in start})
        with torch.no_grad():
            return F.cross_entropy(net(x), y).item()

    result = evaluate_line(Normed(), start, end, (x, y), alphas=ALPHAS, scheme=scheme, progress=False)
    np.testing.assert_allclose(result.loss, [score(a) for a in ALPHAS], rtol=1e-5)


class TiedLM(TinyLM):
    def __init__(self):
        super().__init__()
        self.mlp[-1] = nn.Linear(16, 8)
        self.head = nn.Linear(8, VOCAB, bias=False)
        self.head.weight = self.embed.weight  # tied input and output embeddings, as in GPT-2

    def forward(self, input_ids, attention_mask=None):
        return TinyLM.Output(self.head(super().forward(input_ids).logits))


def test_tied_weights_are_interpolated_once_and_match_a_plain_loop():
    torch.manual_seed(0)
    start, end = random_endpoints(TiedLM())
    end["head.weight"] = end["embed.weight"]  # a tied model's state holds one tensor under both names
    assert "head.weight" in start and "embed.weight" in start
    data = lm_data()
    want = plain_curve(TiedLM(), start, end, [data], ALPHAS, lm_reference)
    fast, slow = run_both_paths(TiedLM, start, end, data, loss="lm_cross_entropy")
    for result in (fast, slow):
        np.testing.assert_allclose(result.loss, want, rtol=1e-5)
    stored_once = {k: v for k, v in end.items() if k != "head.weight"}  # as safetensors files store it
    np.testing.assert_array_equal(evaluate_line(TiedLM(), start, stored_once, data, alphas=ALPHAS,
                                                loss="lm_cross_entropy", progress=False).loss, fast.loss)
    end["head.weight"] = end["embed.weight"] + 1.0
    with pytest.raises(LosspathError, match="different values to embed.weight and head.weight"):
        evaluate_line(TiedLM(), start, end, data, points=3, loss="lm_cross_entropy", progress=False)


class KeywordBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.bn, self.out = nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 4)

    def forward(self, features):
        return self.out(torch.relu(self.bn(self.fc(features))))


def test_recomputed_batchnorm_from_dict_batches_without_targets_equals_the_tensor_path():
    torch.manual_seed(0)
    start, end = random_endpoints(KeywordBN())
    g = torch.Generator().manual_seed(8)
    x, y = torch.randn(30, 6, generator=g), torch.randint(0, 4, (30,), generator=g)
    train_x = torch.randn(50, 6, generator=g)
    kwargs = dict(alphas=ALPHAS, batchnorm="recompute", batch_size=16, progress=False)
    as_dicts = evaluate_line(KeywordBN(), start, end, {"features": x, "labels": y},
                             train_data={"features": train_x}, **kwargs)
    as_tensors = evaluate_line(KeywordBN(), start, end, (x, y), train_data=(train_x, torch.zeros(50)), **kwargs)
    np.testing.assert_allclose(as_dicts.loss, as_tensors.loss, rtol=1e-6)  # (the tensor path has the first-layer
    np.testing.assert_array_equal(as_dicts.class_counts, as_tensors.class_counts)  # shortcut: rounding differs)


def test_a_model_that_fails_at_the_start_state_is_one_sentence_before_any_data_runs():
    class FailsOnNegativeWeights(nn.Linear):
        def forward(self, x):
            if self.weight.sum() < 0:  # control flow on a parameter: vmap falls back, the loop then raises
                raise ValueError("negative weights")
            return super().forward(x)

    model = FailsOnNegativeWeights(3, 2)
    start = {"weight": -torch.ones(2, 3), "bias": torch.zeros(2)}
    end = {"weight": torch.ones(2, 3), "bias": torch.zeros(2)}
    with pytest.warns(UserWarning, match="vmap"), \
            pytest.raises(LosspathError, match="fails at the start or end state .ValueError: negative weights"):
        evaluate_line(model, start, end, (torch.randn(8, 3), torch.zeros(8, dtype=torch.long)), points=3,
                      progress=False)


def test_vmap_failing_only_on_a_later_batch_falls_back_mid_line_with_the_same_numbers():
    class LateDataDependent(Regressor):
        def forward(self, x):
            out = super().forward(x)
            if x.abs().max() > 100 and out.sum() > 1e30:  # reads the α-batched output only on the marked batch
                raise RuntimeError("unreachable")
            return out

    torch.manual_seed(0)
    start, end = random_endpoints(Regressor())
    x, y = regression_data(48, 9)
    x[40, 0] = 200.0  # the last batch takes the data-dependent branch
    kwargs = dict(alphas=ALPHAS, loss="mse", batch_size=16, progress=False)
    with pytest.warns(UserWarning, match="vmap"):
        late = evaluate_line(LateDataDependent(), start, end, (x, y), **kwargs)
    plain = evaluate_line(Regressor(), start, end, (x, y), vectorize=False, **kwargs)
    assert late.info["path"] == "one alpha at a time" and "data-dependent" in late.info["fallback"]
    np.testing.assert_allclose(late.loss, plain.loss, rtol=1e-6)
