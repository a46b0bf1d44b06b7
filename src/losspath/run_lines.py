"""Lines between checkpoints of stored runs, cached inside the run directory (`Run.line_cache`): the line
engine (`lines.evaluate_line`) applied to the run store.

A line's result depends on the run, its two steps, the split, the scheme, the BatchNorm mode and the α
grid; its file name is a hash of exactly those, so a rerun of a study reuses every finished line and an
interrupted study resumes at the first missing one. A line that ends in another run (`end_run`, e.g. between
sibling branches) is stored with its start run, its key naming the end run too. Files are safetensors (no
unpickling), written atomically with a checksum; a cached line that does not read back as written is
computed again, with a notice.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from .checkpoints import save_state
from .data import Dataset
from .files import DamagedFile, load_checksummed, notice
from .lines.engine import evaluate_line
from .lines.result import LineResult
from .store import Run


def _key(run: Run, start: int, end: int, split: str, alphas: np.ndarray, options: dict,
         end_run: Run | None = None) -> str:
    fields = dict(run=run.dir.name, start=start, end=end, split=split, options=options,
                  alphas=np.asarray(alphas, dtype=np.float64).round(12).tolist())
    if end_run is not None:
        fields["end_run"] = end_run.dir.name
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def run_line(run: Run, model, data: Dataset, start_step: int | str, end_step: int | str = "last", *,
             split: str = "test", points: int = 100, alphas=None, scheme: str = "all",
             batchnorm: str = "interpolate", bn_batches: int | None = None, hold: str = "end",
             device=None, progress: bool = False, end_run: Run | None = None) -> LineResult:
    """`evaluate_line` from checkpoint `start_step` of `run` to `end_step` of `end_run` (default: `run`) on
    `data`'s `split`, cached in `run`'s directory.

    BatchNorm `recompute` re-estimates statistics on the training split (without augmentation).
    """
    target = end_run if end_run is not None else run
    start, end = run.resolve_step(start_step), target.resolve_step(end_step)
    alphas = np.linspace(0.0, 1.0, points) if alphas is None else np.asarray(alphas, dtype=np.float64)
    options = dict(scheme=scheme, batchnorm=batchnorm, bn_batches=bn_batches, hold=hold)
    key = _key(run, start, end, split, alphas, options, end_run)
    ends = f"{end}" if end_run is None else f"{end_run.dir.name}.{end}"
    path = run.line_cache(start, ends, split, key)
    if path.is_file():
        try:
            return _read(path)
        except DamagedFile as e:
            notice(f"cached line {path} is damaged ({e.reason}); computing it again.")
    # checkpoints of stored runs are read with their checksums checked
    result = evaluate_line(model, run.load_checkpoint(start), target.load_checkpoint(end), data.split(split), alphas=alphas,
                           scheme=scheme, batchnorm=batchnorm, bn_batches=bn_batches, hold=hold,
                           train_data=data.train if batchnorm == "recompute" else None, device=device,
                           progress=progress)
    _write(path, result)
    return result


def _write(path, r: LineResult) -> None:
    tensors = {name: torch.from_numpy(np.ascontiguousarray(getattr(r, name), dtype=np.float64))
               for name in ("alphas", "loss", "error", "class_counts")}
    meta = dict(num_examples=r.num_examples, scheme=r.scheme, batchnorm=r.batchnorm, distance=r.distance,
                relative_distance=r.relative_distance, undefined=np.asarray(r.undefined).tolist(),
                undefined_reason=list(r.undefined_reason))
    save_state(path, tensors, metadata={"result": json.dumps(meta)})


def _read(path) -> LineResult:
    tensors, metadata = load_checksummed(path)
    arrays = {k: v.numpy() for k, v in tensors.items()}
    try:
        meta = json.loads(metadata["result"])
    except (KeyError, ValueError):
        raise DamagedFile(path, "its metadata lacks the line's description") from None
    return LineResult(alphas=arrays["alphas"], loss=arrays["loss"], error=arrays["error"],
                      class_counts=arrays["class_counts"].astype(np.int64), **meta)
