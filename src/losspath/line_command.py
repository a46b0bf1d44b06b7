"""What `losspath line` does: resolve two endpoints, their network and data, evaluate, write CSV/plot."""
from __future__ import annotations

from pathlib import Path

from .compute_options import DEFAULT, ComputeOptions
from .data import load_dataset
from .device import resolve_device
from .errors import LosspathError
from .files import atomic_write_text, check_output_file
from .limits import check_model_fits, check_points
from .lines.engine import evaluate_line
from .lines.result import LineResult
from .lines.schemes import SCHEMES
from .lines.user_code import is_factory, user_data, user_model
from .models import build_model
from .store import Run, parse_run_reference


def _run_of(ref: str) -> Run | None:
    parsed = parse_run_reference(ref)
    return Run.open(parsed[0]) if parsed and not Path(ref).is_file() else None


def _check_same_architecture(start: str, end: str) -> None:
    """Two run references must name runs of one network; say which two networks they are when not."""
    a, b = _run_of(start), _run_of(end)
    if a is None or b is None:
        return
    fields = ("model", "activation", "bias")
    arch_a, arch_b = ([getattr(r.hparams, f) for f in fields] for r in (a, b))
    if arch_a != arch_b:
        def describe(r):
            return f"{r.hparams.model} ({r.hparams.activation}{'' if r.hparams.bias else ', no bias'})"
        raise LosspathError(f"START is a {describe(a)} run and END a {describe(b)} run; a line needs two states "
                            "of one network.")


def line_command(start: str, end: str, *, split: str = "test", points: int = 100, scheme: str = "all",
                 batchnorm: str = "interpolate", model: str | None = None, data: str | None = None,
                 out: Path | None = None, plot: Path | None = None, data_root=None, device=None,
                 progress: bool = True, loss: str = "cross_entropy", options: ComputeOptions = DEFAULT) -> LineResult:
    """Evaluate the line START → END. Run references bring their own network and data set; checkpoint
    files need `model` and `data`: registry names, or a user's `module:factory` (lines.user_code). Everything
    is checked before anything is written."""
    check_points(points)
    check_output_file(out, "--out")
    if plot is not None:
        for target in (Path(plot), Path(plot).with_suffix(".pdf")):  # plot_line writes both
            check_output_file(target, "--plot")
    device = resolve_device(device)
    options.check_device(device)
    if not is_factory(model):
        _check_same_architecture(start, end)
    run = _run_of(start) or _run_of(end)
    if run is not None:
        model, data = model or run.hparams.model, data or run.hparams.dataset
    if model is None or data is None:
        raise LosspathError("Checkpoint files need --model and --data (run references RUN_DIR@STEP bring their own).")
    recompute = batchnorm == "recompute"
    if is_factory(data):
        split_data, train_data = user_data(data, split, recompute)
    else:
        dataset = load_dataset(data, data_root)
        split_data, train_data = dataset.split(split), (dataset.train if recompute else None)
    if is_factory(model):
        net = user_model(model)
    elif is_factory(data):
        raise LosspathError("A --data MODULE:FUNCTION needs a --model MODULE:FUNCTION too (a registry network is "
                            "built for a registry data set).")
    else:
        check_model_fits(model, lambda: build_model(model, dataset.input_shape, dataset.num_classes), copies=4,
                         what="evaluate lines with")
        if run is not None:
            hp = run.hparams
            net = build_model(model, dataset.input_shape, dataset.num_classes, activation=hp.activation,
                              bias=hp.bias, poly_degree=hp.poly_degree, poly_interval=hp.poly_interval)
        else:
            net = build_model(model, dataset.input_shape, dataset.num_classes)
    schemes = scheme if scheme in SCHEMES else [p.strip() for p in scheme.split(",") if p.strip()]
    if not isinstance(schemes, str):
        names = list(net.state_dict())
        unknown = [p for p in schemes if not any(k == p or k.startswith(p.rstrip(".") + ".") for k in names)]
        if unknown or not schemes:
            raise LosspathError(f"--scheme {scheme!r} is neither a scheme ({', '.join(SCHEMES)}) nor a list of "
                                f"parameter-name prefixes of {model} (its first names: {', '.join(names[:3])}).")
    result = evaluate_line(net, start, end, split_data, points=points, scheme=schemes, batchnorm=batchnorm,
                           train_data=train_data, device=device, progress=progress, loss=loss, options=options)
    if out is not None:
        atomic_write_text(Path(out), result.to_frame().to_csv(index=False))
    if plot is not None:
        from .plots.line import plot_line

        plot_line(result, plot, split=split)
    return result
