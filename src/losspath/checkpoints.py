"""Reading and writing network states: safetensors, written atomically with a checksum; `.pt` read without
unpickling code. The file primitives (atomic writes, checksums, JSON) live in `losspath.files`."""
from __future__ import annotations

from pathlib import Path

import torch

from .errors import LosspathError
from .files import RETRAIN, DamagedFile, load_checksummed, save_checksummed
from .keys import State
from .store import HPARAMS_FILE


def save_state(path: Path, state: State, metadata: dict[str, str] | None = None) -> None:
    """Save a flat name → tensor dict as safetensors, atomically, with a sha256 of the content in its metadata.
    Tensors are made contiguous CPU copies."""
    save_checksummed(path, state, metadata)


def load_state(path: str | Path) -> State:
    """Load a state dict from `.safetensors` or `.pt`/`.pth` (the latter with `weights_only=True`).

    A safetensors file with a recorded checksum is checked against it; files without one (written by other
    programs) are read as they are.
    """
    path = Path(path)
    if not path.is_file():
        raise LosspathError(f"Checkpoint file {path} does not exist.")
    if path.suffix == ".safetensors":
        try:
            return load_checksummed(path, required=False)[0]
        except DamagedFile as e:
            advice = RETRAIN if (path.parent / HPARAMS_FILE).is_file() else "restore it from a good copy"
            raise LosspathError(f"Checkpoint {path} is corrupted or damaged ({e.reason}); {advice}.") from None
    if path.suffix in (".pt", ".pth"):
        return _load_pt(path)
    raise LosspathError(f"Checkpoint {path} must end in .safetensors, .pt or .pth.")


def _load_pt(path: Path) -> State:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file; its message must not reach the user
        if "global" in str(e).lower():  # the weights-only unpickler refused a class or function reference
            raise LosspathError(f"Checkpoint {path} holds code or Python objects besides tensors, which losspath "
                                "will not load; save a state dict of tensors (or a .safetensors file).") from None
        raise LosspathError(f"Checkpoint {path} could not be read as a .pt file of tensors (damaged, or not "
                            "written by torch.save).") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise LosspathError(f"Checkpoint {path} does not hold a dict of tensors.")
    return dict(obj)
