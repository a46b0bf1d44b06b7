"""How numbers are computed on an accelerator: TF32, bf16 autocast, channels_last, torch.compile.

These are runtime options, not hyperparameters: they do not enter a run's hash (its directory name). But TF32
and bf16 change the numbers (and channels_last and compile change the last bits: other kernels, other
reduction orders), so a run records them in DONE's `made_with` next to the thread count and the device, and a
run reused under other options says so in one line, as under another thread count.

Every option is off by default, and off means the code path that existed before the options did: on the CPU the
default numbers are bit-identical to earlier versions. On CUDA, off means exact float32: TF32 is switched off for
cuBLAS matmuls *and* cuDNN convolutions (torch's own default lets cuDNN convolutions use TF32).

  tf32           CUDA matmuls and convolutions in TF32 (10-bit mantissa inputs, float32 accumulation). CUDA only:
                 on the CPU it would change nothing, so it is refused there.
  bf16           autocast to bfloat16 for the forward pass (weights, gradients, optimizer state and every sum
                 stay float32; losses are scored in float32). Training: the training steps only, the logged
                 test metrics are evaluated in float32. Lines: every forward pass of the line. On the CPU torch
                 runs it too (to preview GPU numbers; usually slower than float32 there).
  channels_last  NHWC memory layout for networks with 2-D convolutions (weights and inputs when training; inputs
                 of lines). Refused for networks without one; for lines on the CPU too, where losspath already
                 evaluates 4-D inputs channels_last.
  compile        torch.compile the training forward/backward (training only; the vmapped line engine is not
                 compiled). The first iterations pay the compilation (tens of seconds; a C++ compiler on CPU).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from .errors import LosspathError


@dataclass(frozen=True)
class ComputeOptions:
    """The options; `ComputeOptions()` is exact float32, as losspath always computed."""

    tf32: bool = False
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False

    def record(self) -> dict:
        """What DONE's `made_with` records: precision ("fp32" or "bf16"), tf32, channels_last, compile."""
        return dict(precision="bf16" if self.bf16 else "fp32", tf32=self.tf32, channels_last=self.channels_last,
                    compile=self.compile)

    def check_device(self, device: torch.device) -> None:
        """One sentence for an option that makes no sense on `device`."""
        if self.tf32 and device.type != "cuda":
            raise LosspathError(f"--tf32 changes only CUDA matmuls and convolutions; on {device.type} it would change "
                                "nothing, so losspath refuses it (drop it, or use --device cuda).")

    def check_model(self, model: nn.Module, name: str, device: torch.device, *, line: bool = False) -> None:
        """One sentence for an option that makes no sense for `model` (called `name`) on `device`."""
        self.check_device(device)
        if self.channels_last and not any(isinstance(m, nn.Conv2d) for m in model.modules()):
            raise LosspathError(f"--channels-last changes only networks with 2-D convolutions; {name} has none.")
        if self.channels_last and line and device.type == "cpu":
            raise LosspathError("--channels-last changes nothing for a line on the CPU: losspath evaluates 4-D inputs "
                                "channels_last there already.")
        if self.compile and line:
            raise LosspathError("--compile applies to training only; the line engine is not compiled.")

    @contextlib.contextmanager
    def numerics(self, device: torch.device):
        """Within the block, CUDA matmuls and cuDNN convolutions use TF32 exactly when `tf32` is set (the
        previous settings come back after it). Nothing changes on other devices."""
        if device.type != "cuda":
            yield
            return
        before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = self.tf32
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before

    def autocast(self, device: torch.device):
        """bfloat16 autocast on `device` when `bf16` is set; otherwise a block that changes nothing."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    def layout_model(self, model: nn.Module) -> nn.Module:
        """The model in channels_last layout (in place) when asked; unchanged otherwise."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def layout_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """4-D inputs in channels_last layout when asked; unchanged otherwise."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def compiled(self, net: nn.Module) -> nn.Module:
        """torch.compile(net) when asked; `net` otherwise."""
        return torch.compile(net) if self.compile else net


DEFAULT = ComputeOptions()


def describe(record: dict) -> str:
    """The non-default options of a `made_with` record, as ", bf16 autocast, TF32, ..." ("" for none)."""
    parts = []
    if record.get("precision", "fp32") != "fp32":
        parts.append(f"{record['precision']} autocast")
    parts += [label for key, label in (("tf32", "TF32"), ("channels_last", "channels_last"), ("compile", "compiled"))
              if record.get(key)]
    return "".join(f", {p}" for p in parts)


def with_defaults(record: dict) -> dict:
    """A `made_with` record with the options filled in as they were before runs recorded them (all off)."""
    return {**DEFAULT.record(), **record}


__all__ = ["ComputeOptions", "DEFAULT", "describe", "with_defaults"]
