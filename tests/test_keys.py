"""What a state key names (keys.py), on the names torch's own layers give their tensors."""
import torch
from torch import nn

from losspath.keys import is_bias, is_bn_stat, is_buffer, is_counter, is_weight, module_of, tensor_name


def test_predicates_on_literal_keys():
    assert [k for k in ("fc.bias", "attn.in_proj_bias", "fc.weight", "bias_scale.w") if is_bias(k)] == \
        ["fc.bias", "attn.in_proj_bias"]
    assert [k for k in ("fc.weight", "attn.in_proj_weight", "fc.bias", "weights.b") if is_weight(k)] == \
        ["fc.weight", "attn.in_proj_weight"]
    assert [k for k in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked", "running_var.w")
            if is_bn_stat(k)] == ["bn.running_mean", "bn.running_var"]
    assert [k for k in ("bn.num_batches_tracked", "num_batches_tracked", "bn.running_var") if is_counter(k)] == \
        ["bn.num_batches_tracked", "num_batches_tracked"]
    assert tensor_name("layer1.0.bn1.running_var") == "running_var" and tensor_name("w") == "w"
    assert module_of("layer1.0.bn1.running_var") == "layer1.0.bn1" and module_of("w") == ""


def test_buffers_by_name_are_the_buffers_torch_registers():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(3), nn.BatchNorm1d(3))
    net(torch.zeros(2, 1, 5, 5))
    state = net.state_dict()
    assert {k for k in state if is_buffer(k)} == {name for name, _ in net.named_buffers()}
    assert {k for k in state if not is_buffer(k)} == {name for name, _ in net.named_parameters()}
