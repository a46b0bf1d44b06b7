"""Lines between two stored runs after permuting the second to match the first (Git Re-Basin, Ainsworth et al.
2023), as executor jobs whose results are cached in the run store.

`naive` is the plain line between the two last checkpoints (run_lines.run_line, cached there); `weight` and
`activation` align run B's last state to run A's (align.weight_matching / align.activation_matching, the
latter on the first MATCH_EXAMPLES training examples, unaugmented) and evaluate the line from A to permuted B.
The permuted state is cached in B's directory (aligned/), the line in A's (aligned_lines/), each file named by
what it depends on; a damaged cache file is computed again. With batchnorm="recompute" the BatchNorm
statistics of every point are re-estimated on the training split: an interpolation of two aligned networks
has activations whose statistics are not the interpolation of theirs (Jordan et al. 2023, REPAIR).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from .checkpoints import save_state
from .errors import LosspathError
from .files import DamagedFile, load_checksummed, notice
from .jobs import stored_run
from .runtime import Runtime

METHODS = ("naive", "weight", "activation")
MATCH_EXAMPLES = 1000


def aligned_state(run_a, run_b, method: str, model, data) -> dict:
    """Run B's last state permuted to match run A's last state by `method` ("weight" or "activation")."""
    from .align import activation_matching, weight_matching

    step_a, step_b = run_a.resolve_step("last"), run_b.resolve_step("last")
    path = run_b.aligned_state(method, run_a.dir.name, step_a, step_b)
    if path.is_file():
        try:
            return load_checksummed(path)[0]
        except DamagedFile as e:
            notice(f"cached aligned state {path} is damaged ({e.reason}); computing it again.")
    a, b = run_a.load_checkpoint(step_a), run_b.load_checkpoint(step_b)
    if method == "weight":
        permuted = weight_matching(model, a, b)
    elif method == "activation":
        permuted = activation_matching(model, a, b, data.train, examples=MATCH_EXAMPLES)
    else:
        raise LosspathError(f"Unknown alignment method {method!r}; use {', '.join(METHODS)}.")
    save_state(path, permuted)
    return permuted


def aligned_line_job(run_a_dir: str, run_b_dir: str, method: str, options: dict, runtime: Runtime):
    """The line from run A's last state to run B's, B permuted by `method` (METHODS), on the runtime's device
    with its threads; `options`: split, points, batchnorm, bn_batches. Returns a lines.LineResult."""
    from .lines import LineResult, evaluate_line
    from .run_lines import run_line
    from .store import Run
    from .training import model_for

    if method not in METHODS:
        raise LosspathError(f"Unknown alignment method {method!r}; use {', '.join(METHODS)}.")
    with stored_run(run_a_dir, runtime) as (run_a, data):
        run_b = Run.open(run_b_dir)
        model = model_for(run_a.hparams, data)
        if method == "naive":
            return run_line(run_a, model, data, "last", "last", end_run=run_b, device=runtime.device, **options)
        opts = {**dict(split="test", points=100, batchnorm="interpolate", bn_batches=None), **options}
        steps = [run_a.resolve_step("last"), run_b.resolve_step("last")]
        fields = dict(a=run_a.dir.name, b=run_b.dir.name, steps=steps,
                      method=method, match_examples=MATCH_EXAMPLES,
                      **opts)
        key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
        path = run_a.aligned_line_cache(method, opts["split"], key)
        if path.is_file():
            try:
                tensors, meta = load_checksummed(path)
                return LineResult(alphas=tensors["alphas"].numpy(), loss=tensors["loss"].numpy(),
                                  error=tensors["error"].numpy(), class_counts=tensors["class_counts"].numpy(),
                                  **json.loads(meta["result"]))
            except (DamagedFile, KeyError, ValueError) as e:
                notice(f"cached aligned line {path} is damaged ({getattr(e, 'reason', e)}); computing it again.")
        end = aligned_state(run_a, run_b, method, model, data)
        line = evaluate_line(model, run_a.load_checkpoint("last"), end, data.split(opts["split"]),
                             points=opts["points"],
                             batchnorm=opts["batchnorm"], bn_batches=opts["bn_batches"], device=runtime.device,
                             train_data=data.train if opts["batchnorm"] == "recompute" else None, progress=False)
        tensors = {k: torch.from_numpy(np.ascontiguousarray(getattr(line, k), dtype=np.float64))
                   for k in ("alphas", "loss", "error", "class_counts")}
        meta = dict(num_examples=line.num_examples, batchnorm=line.batchnorm, distance=line.distance,
                    relative_distance=line.relative_distance)
        save_state(path, tensors, metadata={"result": json.dumps(meta)})
        return line
