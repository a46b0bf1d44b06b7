"""losspath: loss and error along straight lines between neural-network states.

Train with a dense checkpoint schedule (`train`), evaluate θ(α) = (1−α)·θ_start + α·θ_end on a data set
(`evaluate_line`), summarise with `losspath.metrics`, and reproduce the papers with `losspath.studies`.
"""
from . import metrics
from .data import Dataset, Split, load_dataset
from .errors import LosspathError
from .hparams import Hparams
from .lines import LineResult, evaluate_line, run_line
from .models import build_model
from .store import Run, checkpoint_path
from .training import evaluate, train

__version__ = "0.1.0"
__all__ = ["Dataset", "Hparams", "LineResult", "LosspathError", "Run", "Split", "build_model", "checkpoint_path",
           "evaluate", "evaluate_line", "load_dataset", "metrics", "run_line", "train"]
