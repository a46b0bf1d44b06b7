"""Tests for losspath.models: exact parameter counts, shapes, OpenLTH-style init, PolyReLU, name parsing."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from losspath.errors import LosspathError
from losspath.models import PolyReLU, build_model, fit_relu_polynomial, model_names, num_parameters


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- parameter counts -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, shape, classes, expected", [
    ("lenet_300_100", (1, 28, 28), 10, 266_610),  # Frankle & Carbin / OpenLTH LeNet-300-100
    ("mlp_300_100", (1, 28, 28), 10, 266_610),
    ("cifar_resnet_20", (3, 32, 32), 10, 272_474),  # OpenLTH cifar_resnet_20
    ("cifar_vgg_16", (3, 32, 32), 10, 14_728_266),  # OpenLTH cifar_vgg_16
    ("imagenet_resnet_50", (3, 224, 224), 1000, 25_557_032),  # torchvision resnet50
    ("imagenet_resnet_18", (3, 224, 224), 1000, 11_689_512),  # torchvision resnet18
])
def test_published_parameter_counts(name, shape, classes, expected):
    model = build_model(name, shape, classes)
    assert count(model) == expected
    assert num_parameters(model) == expected


def test_small_mlp_parameter_count_by_hand():
    # (2, 2) input -> 4 features; 4 -> 5 -> 3 -> 6.
    assert count(build_model("mlp_5_3", (2, 2), 6)) == (4 * 5 + 5) + (5 * 3 + 3) + (3 * 6 + 6)  # 64
    assert count(build_model("mlp_5_3", (2, 2), 6, bias=False)) == 4 * 5 + 5 * 3 + 3 * 6  # 53
    assert count(build_model("mlp", (1, 40), 10)) == 40 * 10 + 10  # softmax regression
    assert count(build_model("mlp_300_100", (1, 28, 28), 10, bias=False)) == 784 * 300 + 300 * 100 + 100 * 10


def test_bias_false_removes_every_bias_and_still_runs():
    for name, shape in [("cifar_resnet_8", (3, 16, 16)), ("cifar_vgg_11", (3, 32, 32)),
                        ("resnet1d_8", (1, 40)), ("conv1d", (1, 40)), ("convnet6", (1, 8, 8))]:
        model = build_model(name, shape, 10, bias=False)
        assert not [n for n, _ in model.named_parameters() if n.endswith("bias")], name
        assert build_model(name, shape, 10)(torch.zeros(2, *shape)).shape == (2, 10)
        assert model(torch.zeros(2, *shape)).shape == (2, 10)
    # The bias-free twin has the same weights, drawn in the same order, as its biased sibling.
    with_bias, without = build_model("mlp_8", (4,), 3, seed=5), build_model("mlp_8", (4,), 3, seed=5, bias=False)
    assert torch.equal(with_bias.fc_layers[0].weight, without.fc_layers[0].weight)
    assert torch.equal(with_bias.fc.weight, without.fc.weight)


# --- forward shapes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, shape, classes", [
    ("mlp", (1, 40), 10),
    ("mlp_32_32", (1, 40), 10),
    ("lenet_300_100", (1, 28, 28), 10),
    ("cifar_resnet_20", (3, 32, 32), 10),
    ("cifar_resnet_8_4", (3, 32, 32), 7),
    ("cifar_vgg_11", (3, 32, 32), 10),
    ("imagenet_resnet_18", (3, 64, 64), 1000),
    ("imagenet_resnet_50", (3, 64, 64), 1000),
    ("resnet1d_20", (1, 40), 10),
    ("resnet1d_8_8", (1, 40), 10),
    ("conv1d", (1, 40), 10),
    ("convnet6", (1, 8, 8), 10),
    ("convnet6", (3, 32, 32), 10),
    ("convnet6_8", (3, 32, 32), 10),
])
def test_forward_shape(name, shape, classes):
    model = build_model(name, shape, classes)
    batch = 1 if name.startswith("imagenet") else 2
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(batch, *shape))
    assert out.shape == (batch, classes)
    assert torch.isfinite(out).all()


def test_deep_imagenet_resnets_build():
    assert count(build_model("imagenet_resnet_34", (3, 224, 224), 1000)) == 21_797_672  # torchvision resnet34
    assert count(build_model("imagenet_resnet_101", (3, 224, 224), 1000)) == 44_549_160  # torchvision resnet101


# --- initialization -------------------------------------------------------------------------------------

def test_same_seed_identical_different_seed_differs():
    for name, shape in [("mlp_300_100", (1, 28, 28)), ("cifar_resnet_8", (3, 32, 32)), ("resnet1d_8", (1, 40))]:
        a = build_model(name, shape, 10, seed=3).state_dict()
        b = build_model(name, shape, 10, seed=3).state_dict()
        c = build_model(name, shape, 10, seed=4).state_dict()
        assert a.keys() == b.keys() == c.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not torch.equal(a["fc.weight"], c["fc.weight"])


def test_global_rng_untouched():
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    build_model("cifar_resnet_8", (3, 32, 32), 10, seed=1)
    build_model("mlp_100", (1, 40), 10, activation="poly")
    assert torch.equal(torch.get_rng_state(), before)


def test_init_scale_multiplies_linear_and_conv_weights_only():
    one = dict(build_model("cifar_resnet_8", (3, 32, 32), 10, seed=2).named_modules())
    two = dict(build_model("cifar_resnet_8", (3, 32, 32), 10, seed=2, init_scale=2.0).named_modules())
    for name, module in one.items():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            assert torch.equal(two[name].weight, 2 * module.weight), name
        if isinstance(module, nn.BatchNorm2d):
            assert torch.equal(two[name].weight, module.weight), name


def test_openlth_initialization():
    model = build_model("cifar_resnet_20", (3, 32, 32), 10, seed=0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert (module.weight >= 0).all() and (module.weight < 1).all()
            assert (module.bias == 0).all()
    assert (model.fc.bias == 0).all()
    lenet = build_model("lenet_300_100", (1, 28, 28), 10)
    assert all((layer.bias == 0).all() for layer in lenet.fc_layers)
    # kaiming_normal, fan_in: std = sqrt(2 / fan_in)
    std = lenet.fc_layers[0].weight.std().item()
    assert std == pytest.approx(math.sqrt(2 / 784), rel=0.02)
    conv = model.blocks[4].conv2.weight  # 32 -> 32 channels, 3x3: fan_in = 288
    assert conv.std().item() == pytest.approx(math.sqrt(2 / 288), rel=0.05)


def test_uniform_bias_init_as_openlth_leaves_it():
    """bias_init="uniform": Linear/Conv biases U(±1/sqrt(fan_in)) (torch's default, kept by OpenLTH); BatchNorm
    shifts stay 0; weights identical to the default init; the same seed gives the same biases."""
    lenet = build_model("lenet_300_100", (1, 28, 28), 10, seed=3, bias_init="uniform")
    zero = build_model("lenet_300_100", (1, 28, 28), 10, seed=3)
    for layer, fan_in in zip([*lenet.fc_layers, lenet.fc], (784, 300, 100)):
        bound = 1 / math.sqrt(fan_in)
        assert (layer.bias.abs() <= bound).all() and (layer.bias != 0).all()
    for layer, fan_in in zip(lenet.fc_layers, (784, 300)):  # 300 and 100 draws fill the interval
        bound = 1 / math.sqrt(fan_in)
        assert layer.bias.abs().max() > 0.9 * bound and layer.bias.mean().abs() < 0.3 * bound
    for a, b in zip(lenet.fc_layers, zero.fc_layers):
        torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=0)
    again = build_model("lenet_300_100", (1, 28, 28), 10, seed=3, bias_init="uniform")
    assert torch.equal(again.fc.bias, lenet.fc.bias)
    resnet = build_model("cifar_resnet_8", (3, 32, 32), 10, seed=0, bias_init="uniform")
    assert all((m.bias == 0).all() for m in resnet.modules() if isinstance(m, nn.BatchNorm2d))
    assert (resnet.fc.bias != 0).all()
    with pytest.raises(LosspathError, match="bias_init"):
        build_model("mlp", (4,), 2, bias_init="normal")


def test_bad_init_arguments_raise():
    with pytest.raises(LosspathError):
        build_model("mlp", (4,), 2, init_scale=0.0)
    with pytest.raises(LosspathError):
        build_model("mlp", (4,), 2, init_scale=float("nan"))
    with pytest.raises(LosspathError):
        build_model("mlp", (4,), 2, seed=-1)


# --- polynomial activation ------------------------------------------------------------------------------

def test_degree_2_fit_matches_closed_form_least_squares():
    # Continuous L2 fit of relu on [-1, 1]: relu(x) = (x + |x|) / 2 and the Legendre projection of |x| onto
    # degree <= 2 is 1/2 * P0 + 5/8 * P2 = 3/16 + 15/16 x^2, so p(x) = 3/32 + x/2 + 15/32 x^2.
    coeffs, err = fit_relu_polynomial(2, 1.0)
    np.testing.assert_allclose(coeffs, [3 / 32, 1 / 2, 15 / 32], atol=1e-3)
    # max |p - relu| on [-1, 1] is at x = 0: 3/32.
    assert err == pytest.approx(3 / 32, abs=1e-3)
    # relu(a x) = a relu(x), so on [-4, 4]: c_k = 4 * (coefficient on [-1, 1]) / 4^k.
    coeffs4, err4 = fit_relu_polynomial(2, 4.0)
    np.testing.assert_allclose(coeffs4, [4 * 3 / 32, 1 / 2, 15 / 32 / 4], atol=1e-3)
    assert err4 == pytest.approx(4 * 3 / 32, abs=4e-3)


def test_fit_matches_independent_lstsq_and_improves_with_degree():
    x = np.linspace(-4, 4, 4001)
    for degree in (2, 4, 6):
        coeffs, err = fit_relu_polynomial(degree, 4.0)
        reference = np.polynomial.polynomial.Polynomial.fit(x, np.maximum(x, 0), degree).convert().coef
        np.testing.assert_allclose(coeffs, reference, atol=2e-3)
        independent_err = np.max(np.abs(np.polynomial.polynomial.polyval(x, coeffs) - np.maximum(x, 0)))
        assert err == pytest.approx(independent_err, rel=1e-2)
    errors = [fit_relu_polynomial(d, 4.0)[1] for d in (2, 4, 8)]
    assert errors[1] < 0.7 * errors[0] and errors[2] < 0.7 * errors[1]


def test_polyrelu_module():
    act = PolyReLU(4, 2.0)
    coeffs, err = fit_relu_polynomial(4, 2.0)
    assert act.fit_error == err
    assert not list(act.parameters())
    assert "coeffs" in dict(act.named_buffers())
    x = torch.linspace(-2, 2, 101)
    expected = np.polynomial.polynomial.polyval(x.numpy().astype(np.float64), coeffs)
    np.testing.assert_allclose(act(x).numpy(), expected, atol=1e-5)
    assert (act(x) - torch.relu(x)).abs().max().item() <= err + 1e-5


def test_poly_nets_forward_and_share_keys_with_relu_twins():
    for name, shape in [("convnet6", (1, 8, 8)), ("mlp_32", (1, 40)), ("cifar_resnet_8", (3, 32, 32)),
                        ("resnet1d_8", (1, 40)), ("conv1d", (1, 40)), ("cifar_vgg_11", (3, 32, 32))]:
        poly = build_model(name, shape, 10, activation="poly", poly_degree=4, poly_interval=3.0)
        relu = build_model(name, shape, 10)
        assert any(isinstance(m, PolyReLU) for m in poly.modules())
        assert not any(isinstance(m, nn.ReLU) for m in poly.modules())
        assert poly.state_dict().keys() == relu.state_dict().keys()
        assert all(torch.equal(poly.state_dict()[k], relu.state_dict()[k]) for k in relu.state_dict())
        out = poly(torch.randn(2, *shape) * 0.1)
        assert out.shape == (2, 10) and torch.isfinite(out).all()


# --- bad input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet", "cifar_resnet_21", "cifar_resnet_2", "cifar_resnet_20_0",
                                  "cifar_vgg_12", "imagenet_resnet_49", "mlp_0", "mlp_a", "MLP", "lenet_300",
                                  "convnet5", "conv1d_3", ""])
def test_bad_names_raise(name):
    with pytest.raises(LosspathError):
        build_model(name, (3, 32, 32), 10)


def test_unknown_name_lists_valid_patterns():
    with pytest.raises(LosspathError) as info:
        build_model("resnet_20", (3, 32, 32), 10)
    for pattern in model_names():
        assert pattern in str(info.value)
    assert "cifar_resnet_D[_W]" in model_names() and "mlp_W1[_W2...]" in model_names()


def test_bad_activation_shape_and_poly_arguments_raise():
    with pytest.raises(LosspathError):
        build_model("mlp", (4,), 2, activation="tanh")
    with pytest.raises(LosspathError):
        build_model("cifar_resnet_20", (1, 40), 10)  # 1-D signal into a 2-D net
    with pytest.raises(LosspathError):
        build_model("resnet1d_20", (3, 32, 32), 10)
    with pytest.raises(LosspathError):
        build_model("cifar_vgg_11", (1, 8, 8), 10)  # too small for four max-pools
    with pytest.raises(LosspathError):
        build_model("mlp", (4,), 0)
    with pytest.raises(LosspathError):
        build_model("mlp", (4,), 2, activation="poly", poly_degree=0)
    with pytest.raises(LosspathError):
        fit_relu_polynomial(2, -1.0)
