"""THE line engine: loss, error and predictions along straight lines θ(α) between two network states."""
from .cached import run_line
from .engine import evaluate_line
from .result import LineResult
from .schemes import layer_depths, line_rules
from .states import interpolated_state

__all__ = ["LineResult", "evaluate_line", "run_line", "interpolated_state", "layer_depths", "line_rules"]
