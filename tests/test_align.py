"""losspath.align: permutation groups traced from the code, function preservation, weight/activation matching."""
import itertools
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from losspath.align import (activation_matching, apply_permutation, invert, permutation_spec,
                            random_permutations, weight_matching)
from losspath.errors import LosspathError
from losspath.models import build_model
from losspath.models.registry import FAMILIES

# every registry family at a small size: (name, input shape, build options)
REGISTRY_MODELS = [
    ("mlp_12_8", (10,), {}),
    ("lenet_300_100", (1, 4, 4), {}),
    ("cifar_resnet_8_4", (3, 8, 8), {}),
    ("cifar_vgg_11", (3, 16, 16), {}),
    ("imagenet_resnet_18_4", (3, 32, 32), {}),
    ("imagenet_resnet_50_2", (3, 32, 32), {}),
    ("resnet1d_14_4", (1, 40), {}),
    ("conv1d", (1, 40), {}),
    ("convnet6_4", (1, 8, 8), {}),
    ("deeplinear_3_6", (5,), {}),
    ("deeprelu_3_6", (5,), {}),
    ("mlp_12_8", (10,), {"activation": "poly"}),
    ("resnet1d_8_4", (1, 40), {"bias": False}),
]


def random_state(model: nn.Module, seed: int) -> dict:
    """Every float tensor of the model random (BatchNorm variances positive), in float64."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in model.state_dict().items():
        if not v.is_floating_point():
            out[k] = v.clone()
        elif k.endswith("running_var"):
            out[k] = torch.rand(v.shape, generator=g, dtype=torch.float64) + 0.5
        else:
            out[k] = torch.randn(v.shape, generator=g, dtype=torch.float64) * 0.5
    return out


def outputs(model: nn.Module, state: dict, x: torch.Tensor) -> torch.Tensor:
    model.load_state_dict(state)
    with torch.no_grad():
        return model.eval()(x)


def test_the_parametrized_models_cover_every_registry_family():
    covered = {f.pattern for f in FAMILIES for name, _, _ in REGISTRY_MODELS if re.fullmatch(f.regex, name)}
    assert covered == {f.pattern for f in FAMILIES} - {"mlp"}  # `mlp` alone has no hidden units


@pytest.mark.parametrize("name,shape,options", REGISTRY_MODELS, ids=lambda v: str(v))
def test_permuting_every_registry_model_preserves_its_outputs(name, shape, options):
    model = build_model(name, shape, 10, **options).double()
    spec = permutation_spec(model)
    assert spec.groups, "traced no permutable group"
    state = random_state(model, 0)
    permuted = apply_permutation(spec, random_permutations(spec, 1), state)
    assert any(not torch.equal(state[k], permuted[k]) for k in state)
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    before, after = outputs(model, state, x), outputs(model, permuted, x)
    torch.testing.assert_close(after, before, rtol=1e-10, atol=1e-10)


def test_resnet_groups_tie_each_stage_across_its_residual_additions():
    spec = permutation_spec(build_model("resnet1d_8_4", (1, 40), 10))
    # stem + stage-1 stream, three block-internal groups, the stage-2 and stage-3 streams
    assert spec.sizes == {"conv": 4, "blocks.0.conv1": 4, "blocks.1.conv1": 8, "blocks.1.conv2": 8,
                          "blocks.2.conv1": 16, "blocks.2.conv2": 16}
    stream = {k for k, axis, _ in spec.groups["conv"]}
    assert {"conv.weight", "bn.weight", "bn.running_var", "blocks.0.conv2.weight", "blocks.0.bn2.bias",
            "blocks.0.conv1.weight", "blocks.1.conv1.weight", "blocks.1.shortcut.0.weight"} <= stream
    stage2 = {(k, axis) for k, axis, _ in spec.groups["blocks.1.conv2"]}
    assert {("blocks.1.conv2.weight", 0), ("blocks.1.shortcut.0.weight", 0), ("blocks.1.shortcut.1.weight", 0),
            ("blocks.2.conv1.weight", 1)} <= stage2


def test_a_linear_after_flatten_permutes_blocks_of_the_flattened_map():
    spec = permutation_spec(build_model("conv1d", (1, 40), 10))
    assert ("fc.weight", 1, 5) in spec.groups["convs.2"]  # 32 channels × length 5


class UserResidualMLP(nn.Module):
    """A user's net: functional ReLUs, residual blocks, the same block type twice, a scalar multiply."""

    def __init__(self, width=6, hidden=5):
        super().__init__()
        self.inp = nn.Linear(4, width)
        self.a1, self.b1 = nn.Linear(width, hidden), nn.Linear(hidden, width)
        self.a2, self.b2 = nn.Linear(width, hidden), nn.Linear(hidden, width)
        self.norm = nn.BatchNorm1d(width)
        self.out = nn.Linear(width, 3)

    def forward(self, x):
        x = F.relu(self.inp(x))
        x = x + self.b1(torch.relu(self.a1(x)))
        x = x + 0.5 * self.b2(F.relu(self.a2(x)))
        return self.out(self.norm(x).relu())


def test_a_user_defined_residual_net_has_its_stream_and_block_groups_and_keeps_its_function():
    model = UserResidualMLP().double()
    spec = permutation_spec(model)
    assert spec.sizes == {"inp": 6, "a1": 5, "a2": 5}
    assert {k for k, _, _ in spec.groups["inp"]} == {
        "inp.weight", "inp.bias", "a1.weight", "b1.weight", "b1.bias", "a2.weight", "b2.weight", "b2.bias",
        "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var", "out.weight"}
    state = random_state(model, 3)
    permuted = apply_permutation(spec, random_permutations(spec, 4), state)
    x = torch.randn(7, 4, dtype=torch.float64)
    torch.testing.assert_close(outputs(model, permuted, x), outputs(model, state, x), rtol=1e-12, atol=1e-12)


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(3, 4), nn.Linear(3, 4), nn.Linear(3, 5)
        self.out = nn.Linear(8, 2)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        return self.out(torch.cat([self.a(x), self.b(x)], dim=1)) + self.head(F.relu(self.c(x)))


def test_an_operation_the_tracer_does_not_know_fixes_only_the_units_it_touches():
    spec = permutation_spec(Concat())
    assert spec.sizes == {"c": 5}
    assert any("cat" in reason for reason in spec.fixed)


def test_an_apply_permutation_round_trip_gives_back_the_state_bit_for_bit():
    model = build_model("resnet1d_8_4", (1, 40), 10)
    spec = permutation_spec(model)
    state = model.state_dict()
    perms = random_permutations(spec, 5)
    there = apply_permutation(spec, perms, state)
    back = apply_permutation(spec, {g: invert(p) for g, p in perms.items()}, there)
    assert all(torch.equal(back[k], state[k]) for k in state)
    assert not all(torch.equal(there[k], state[k]) for k in state)


@pytest.mark.parametrize("name,shape", [("mlp_12_8", (10,)), ("convnet6_4", (1, 8, 8)), ("resnet1d_8_4", (1, 40)),
                                        ("conv1d", (1, 40))])
def test_weight_matching_recovers_a_known_random_permutation_exactly(name, shape):
    model = build_model(name, shape, 10)
    spec = permutation_spec(model)
    a = model.state_dict()
    perms = random_permutations(spec, 7)
    b = apply_permutation(spec, perms, a)
    result, found = weight_matching(model, a, b, return_perms=True)
    assert all(torch.equal(result[k], a[k]) for k in a)
    assert all(np.array_equal(found[g], invert(perms[g])) for g in perms)


def test_activation_matching_recovers_a_known_random_permutation_exactly():
    model = build_model("resnet1d_8_4", (1, 40), 10).double()
    spec = permutation_spec(model)
    a = random_state(model, 12)
    for k in a:  # positive BatchNorm shifts: no unit is dead (dead units are interchangeable, so unidentifiable)
        if k.endswith(("bn1.bias", "bn2.bias", "bn.bias", "shortcut.1.bias")):
            a[k] = a[k].abs() + 1
    perms = random_permutations(spec, 8)
    b = apply_permutation(spec, perms, a)
    x = torch.randn(64, 1, 40, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    result, found = activation_matching(model, a, b, x, return_perms=True)
    assert all(np.array_equal(found[g], invert(perms[g])) for g in perms)
    assert all(torch.equal(result[k], a[k]) for k in a)


def test_weight_matching_of_one_group_finds_the_best_of_all_permutations():
    # one hidden group of 5 units: weight matching is one exact linear assignment; compare with brute force
    model = build_model("mlp_5", (3,), 2)
    a, b = random_state(model, 10), random_state(model, 11)
    spec = permutation_spec(model)

    def score(state):
        return sum(float((a[k] * state[k]).sum()) for k in a)

    best = max(score(apply_permutation(spec, {"fc_layers.0": np.array(p)}, b))
               for p in itertools.permutations(range(5)))
    assert score(weight_matching(model, a, b)) == pytest.approx(best, rel=1e-12)
    assert best > score(b)  # the identity is not already optimal for these seeds


def test_an_explicit_spec_gives_the_traced_groups_of_an_mlp():
    model = build_model("mlp_6_4", (3,), 2)
    explicit = permutation_spec(model, {
        "fc_layers.0": [("fc_layers.0.weight", 0), ("fc_layers.0.bias", 0), ("fc_layers.1.weight", 1)],
        "fc_layers.1": [("fc_layers.1.weight", 0), ("fc_layers.1.bias", 0), ("fc.weight", 1)]})
    traced = permutation_spec(model)
    assert {g: set(e) for g, e in explicit.groups.items()} == {g: set(e) for g, e in traced.groups.items()}
    assert explicit.sizes == traced.sizes == {"fc_layers.0": 6, "fc_layers.1": 4}


@pytest.mark.parametrize("spec,message", [
    ({"h": [("nope.weight", 0)]}, "not in the state dict"),
    ({"h": [("fc_layers.0.weight", 2)]}, "axis 2 does not exist"),
    ({"h": [("fc_layers.0.weight", 0), ("fc.weight", 0)]}, "different numbers of units"),
])
def test_a_bad_explicit_spec_is_one_clear_error(spec, message):
    with pytest.raises(LosspathError, match=message):
        permutation_spec(build_model("mlp_6", (3,), 2), spec)


def test_a_model_without_hidden_units_cannot_be_aligned():
    model = build_model("mlp", (3,), 2)
    with pytest.raises(LosspathError, match="no hidden units that can be permuted"):
        weight_matching(model, model.state_dict(), model.state_dict())


def test_states_that_do_not_fit_the_model_are_one_clear_error():
    model = build_model("mlp_6", (3,), 2)
    other = build_model("mlp_5", (3,), 2).state_dict()
    with pytest.raises(LosspathError, match="The second state does not fit the model: it has other shapes"):
        weight_matching(model, model.state_dict(), other)


def test_activation_matchings_streamed_correlation_equals_numpys_corrcoef():
    from losspath.align.matching import _CrossMoments

    g = torch.Generator().manual_seed(14)
    za, zb = torch.randn(90, 5, generator=g, dtype=torch.float64), torch.randn(90, 5, generator=g, dtype=torch.float64)
    zb[:, 1] += za[:, 2]  # one correlated pair
    moments = _CrossMoments(5)
    for lo in range(0, 90, 40):  # three batches of unequal size
        moments.add(za[lo : lo + 40], zb[lo : lo + 40])
    reference = np.corrcoef(za.numpy().T, zb.numpy().T)[:5, 5:]
    np.testing.assert_allclose(moments.correlation(), reference, rtol=1e-9, atol=1e-12)
