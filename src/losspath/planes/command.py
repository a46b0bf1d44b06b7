"""What `losspath plane` does: choose a plane from its arguments, evaluate a grid on it, write CSV and figure.

  RUN_DIR                 Goodfellow et al. 2015's trajectory plane of the run's saved checkpoints (init → final
                          and the residuals' first principal component); the path is projected and drawn.
  STATE_A STATE_B STATE_C the plane through three states (Garipov et al. 2018).
  STATE                   two filter-normalized random directions around it (Li et al. 2018, ignore biasbn).
States are RUN_DIR@STEP or checkpoint files (these need --model and --data). Everything is checked before
anything is evaluated or written.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import load_dataset
from ..device import resolve_device
from ..errors import LosspathError
from ..files import atomic_write_text, check_output_file
from ..limits import check_model_fits
from ..models import build_model
from ..store import Run, parse_run_reference
from ..training import model_for
from .directions import plane_through, project, random_plane, trajectory_plane
from .engine import BATCHNORM_MODES, evaluate_plane

MAX_POINTS = 201  # per axis: 201² = 40,401 grid points


def plane_command(refs: list[str], *, points: int = 21, split: str = "test", batchnorm: str = "interpolate",
                  margin: float = 0.25, extent: float = 1.0, seed: int = 0, model: str | None = None,
                  data: str | None = None, out: Path | None = None, plot: Path | None = None, data_root=None,
                  device=None, progress: bool = True):
    """Evaluate a plane chosen by `refs` (see the module docstring) on a points × points grid. The grid spans
    the named points (and the trajectory) plus `margin` of their extent on every side; a random plane spans
    [−extent, extent]². Returns (PlaneResult, path coordinates or None)."""
    if not isinstance(points, int) or not 2 <= points <= MAX_POINTS:
        raise LosspathError(f"--points must be an integer from 2 to {MAX_POINTS} (per axis), not {points!r}.")
    if not (np.isfinite(margin) and margin >= 0) or not (np.isfinite(extent) and extent > 0):
        raise LosspathError("--margin must be at least 0 and --extent above 0.")
    if batchnorm not in BATCHNORM_MODES:
        raise LosspathError(f"--batchnorm must be one of {', '.join(BATCHNORM_MODES)}, not {batchnorm!r}.")
    if split not in ("test", "train"):
        raise LosspathError(f"--split must be test or train, not {split!r}.")
    if len(refs) not in (1, 3):
        raise LosspathError(f"Give one run directory (its trajectory plane), three states (the plane through "
                            f"them) or one state (a random plane around it), not {len(refs)} arguments.")
    check_output_file(out, "--out")
    if plot is not None:
        for target in (Path(plot).with_suffix(".png"), Path(plot).with_suffix(".pdf")):
            check_output_file(target, "--plot")
    device = resolve_device(device)

    run, steps = None, None
    if len(refs) == 1 and parse_run_reference(refs[0]) is None and Path(refs[0]).is_dir():
        run = Run.open(refs[0])
        steps = run.saved_steps()
        if len(steps) < 3:
            raise LosspathError(f"Run {refs[0]} has {len(steps)} saved checkpoints; a trajectory plane needs 3.")
        states = [run.load_checkpoint(s) for s in steps]
        plane = trajectory_plane(states)
    else:
        parsed = [(ref, parse_run_reference(ref)) for ref in refs]
        run = next((Run.open(p[0]) for ref, p in parsed if p and not Path(ref).is_file()), None)
        states = None
        plane = plane_through(*refs) if len(refs) == 3 else random_plane(refs[0], seed=seed)
    net, eval_data, train_data = _network_and_data(run, model, data, split, batchnorm == "recompute", data_root)

    coords = distances = None
    if states is not None:
        coords, distances = project(plane, states)
    if len(refs) == 1 and states is None:
        a_values = b_values = np.linspace(-extent, extent, points)
    else:
        spans = np.array(list(plane.points.values()) + ([] if coords is None else list(coords)))
        a_values, b_values = (_axis(spans[:, i], margin, points) for i in (0, 1))
    result = evaluate_plane(net, plane, eval_data, grid=(a_values, b_values), batchnorm=batchnorm,
                            train_data=train_data, device=device, progress=progress)
    if out is not None:
        atomic_write_text(Path(out), result.to_frame().to_csv(index=False))
        if coords is not None:
            import pandas as pd

            path_frame = pd.DataFrame({"step": steps, "a": coords[:, 0], "b": coords[:, 1], "distance": distances})
            atomic_write_text(Path(out).with_name(Path(out).stem + "_path.csv"), path_frame.to_csv(index=False))
    if plot is not None:
        from ..plots.plane import plot_plane

        plot_plane(result, plot, path_coords=coords, distances=distances, split=split, title=plane.kind)
    return result, coords


def _axis(values: np.ndarray, margin: float, points: int) -> np.ndarray:
    low, high = float(np.min(values)), float(np.max(values))
    span = high - low if high > low else max(abs(high), 1.0)
    return np.linspace(low - margin * span, high + margin * span, points)


def _network_and_data(run, model, data, split, recompute, data_root):
    if run is not None:
        model, data = model or run.hparams.model, data or run.hparams.dataset
    if model is None or data is None:
        raise LosspathError("Checkpoint files need --model and --data (run references RUN_DIR@STEP bring their own).")
    dataset = load_dataset(data, data_root)
    build = lambda: build_model(model, dataset.input_shape, dataset.num_classes)  # noqa: E731
    check_model_fits(model, build, copies=4, what="evaluate planes with")
    net = model_for(run.hparams, dataset) if run is not None else build()
    return net, dataset.split(split), (dataset.train if recompute else None)
