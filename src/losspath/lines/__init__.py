"""THE line engine: loss, error and predictions along straight lines θ(α) between two network states.

The engine knows states, models and data, not the run store: lines between stored checkpoints, cached in the
run directory, are `losspath.run_lines.run_line`; the `losspath line` command is `losspath.line_command`.
"""
from .engine import evaluate_line
from .result import LineResult
from .schemes import layer_depths, line_rules
from .states import interpolated_state

__all__ = ["LineResult", "evaluate_line", "interpolated_state", "layer_depths", "line_rules"]
