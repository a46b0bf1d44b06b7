"""What `losspath line` does: resolve two endpoints, their network and data, evaluate, write CSV/plot."""
from __future__ import annotations

from pathlib import Path

from ..checkpoints import atomic_write_text
from ..data import load_dataset
from ..errors import LosspathError
from ..models import build_model
from ..store import Run, parse_run_reference
from .engine import evaluate_line
from .result import LineResult
from .schemes import SCHEMES


def _run_of(ref: str) -> Run | None:
    parsed = parse_run_reference(ref)
    return Run.open(parsed[0]) if parsed and not Path(ref).is_file() else None


def line_command(start: str, end: str, *, split: str = "test", points: int = 100, scheme: str = "all",
                 batchnorm: str = "interpolate", model: str | None = None, data: str | None = None,
                 out: Path | None = None, plot: Path | None = None, data_root=None, device=None,
                 progress: bool = True) -> LineResult:
    """Evaluate the line START → END. Run references bring their own network and data set; checkpoint
    files need `model` and `data`. Everything is checked before anything is written."""
    if points < 2:
        raise LosspathError(f"--points must be at least 2, not {points}.")
    run = _run_of(start) or _run_of(end)
    if run is not None:
        model, data = model or run.hparams.model, data or run.hparams.dataset
    if model is None or data is None:
        raise LosspathError("Checkpoint files need --model and --data (run references RUN_DIR@STEP bring their own).")
    dataset = load_dataset(data, data_root)
    split_data = dataset.split(split)
    if run is not None:
        hp = run.hparams
        net = build_model(model, dataset.input_shape, dataset.num_classes, activation=hp.activation, bias=hp.bias,
                          poly_degree=hp.poly_degree, poly_interval=hp.poly_interval)
    else:
        net = build_model(model, dataset.input_shape, dataset.num_classes)
    schemes = scheme if scheme in SCHEMES else [p.strip() for p in scheme.split(",") if p.strip()]
    result = evaluate_line(net, start, end, split_data, points=points, scheme=schemes, batchnorm=batchnorm,
                           train_data=dataset.train if batchnorm == "recompute" else None, device=device,
                           progress=progress)
    if out is not None:
        atomic_write_text(Path(out), result.to_frame().to_csv(index=False))
    if plot is not None:
        from ..plots.line import plot_line

        plot_line(result, plot, split=split)
    return result
