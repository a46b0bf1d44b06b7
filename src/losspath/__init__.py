"""losspath: loss and error along straight lines between neural-network states.

Train with a dense checkpoint schedule (`train`), evaluate θ(α) = (1−α)·θ_start + α·θ_end on a data set
(`evaluate_line`), summarise with `losspath.metrics`, and reproduce the papers with `losspath.studies`.
The names below load on first use, so `import losspath` (and the `losspath` command's start) stays quick.
"""
import importlib

__version__ = "0.1.0"
_HOMES = {"Dataset": "data", "Split": "data", "load_dataset": "data", "LosspathError": "errors",
          "Hparams": "hparams", "LineResult": "lines", "evaluate_line": "lines", "run_line": "run_lines",
          "build_model": "models", "Run": "store", "checkpoint_path": "store", "evaluate": "training",
          "train": "training", "metrics": None, "evaluate_plane": "planes", "PlaneResult": "planes",
          "plane_through": "planes", "trajectory_plane": "planes", "random_plane": "planes",
          "sharpness": "curvature", "hessian_trace": "curvature"}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'losspath' has no attribute {name!r}")
    home = _HOMES[name]
    value = importlib.import_module(f".{home or name}", __name__)
    value = value if home is None else getattr(value, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOMES))
