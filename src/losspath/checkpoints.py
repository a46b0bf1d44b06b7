"""Reading and writing network states: safetensors, written atomically; `.pt` read without unpickling code."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import LosspathError

State = dict[str, torch.Tensor]


def atomic_write(path: Path, write) -> None:
    """Call `write(tmp_path)` on a temporary file next to `path`, then rename it into place.

    A reader never sees a half-written file, and an interrupted write leaves no file at `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp):
        Path(tmp).write_text(text)

    atomic_write(path, write)


def save_state(path: Path, state: State, metadata: dict[str, str] | None = None) -> None:
    """Save a flat name → tensor dict as safetensors, atomically. Tensors are made contiguous CPU copies."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_state(path: str | Path) -> State:
    """Load a state dict from `.safetensors` or `.pt`/`.pth` (the latter with `weights_only=True`)."""
    path = Path(path)
    if not path.is_file():
        raise LosspathError(f"Checkpoint file {path} does not exist.")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise LosspathError(f"Checkpoint {path} is corrupted or not a safetensors file ({e}).") from None
    if path.suffix in (".pt", ".pth"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a bad file
            raise LosspathError(f"Checkpoint {path} could not be read as a weights-only .pt file ({e}).") from None
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise LosspathError(f"Checkpoint {path} does not hold a dict of tensors.")
        return dict(obj)
    raise LosspathError(f"Checkpoint {path} must end in .safetensors, .pt or .pth.")


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
