"""What `losspath align` does: resolve two states and their network, permute the second to match the first,
write it as safetensors, and say how much closer it came."""
from __future__ import annotations

from pathlib import Path

from ..checkpoints import save_state
from ..errors import LosspathError
from ..files import check_output_file
from ..store import Run, parse_run_reference
from .matching import activation_matching, permutation_spec, weight_matching
from .states import resolve

METHODS = ("weight", "activation")
MATCH_EXAMPLES = 1000  # training examples activation matching correlates units on (unaugmented, the first ones)


def _run_of(ref: str) -> Run | None:
    parsed = parse_run_reference(ref)
    return Run.open(parsed[0]) if parsed and not Path(ref).is_file() else None


def align_command(state_a: str, state_b: str, out: Path, *, method: str = "weight", model: str | None = None,
                  data: str | None = None, data_root=None) -> dict:
    """Permute B to match A by `method` and write it to `out` (.safetensors). Run references bring their own
    network and data set; checkpoint files need `model` and `data` (registry names). Returns the number of
    permuted groups and the parameter distances ‖A − B‖ before and after."""
    from ..data import load_dataset
    from ..metrics import distance
    from ..models import build_model

    if method not in METHODS:
        raise LosspathError(f"Unknown --method {method!r}; use weight or activation.")
    if Path(out).suffix != ".safetensors":
        raise LosspathError(f"--out must name a .safetensors file, not {out}.")
    check_output_file(out, "--out")
    for ref in (state_a, state_b):
        if not Path(ref).is_file() and parse_run_reference(ref) is None:
            raise LosspathError(f"{ref} is neither a checkpoint file nor a run reference RUN_DIR@STEP.")
    run = _run_of(state_a) or _run_of(state_b)
    hp = run.hparams if run is not None else None
    model, data = model or (hp and hp.model), data or (hp and hp.dataset)
    if model is None or data is None:
        raise LosspathError("Checkpoint files need --model and --data (run references RUN_DIR@STEP bring their own).")
    dataset = load_dataset(data, data_root)
    extra = dict(activation=hp.activation, bias=hp.bias, poly_degree=hp.poly_degree,
                 poly_interval=hp.poly_interval) if hp is not None else {}
    net = build_model(model, dataset.input_shape, dataset.num_classes, **extra)
    a, b = resolve(state_a, "first"), resolve(state_b, "second")
    if method == "weight":
        permuted = weight_matching(net, a, b)
    else:
        permuted = activation_matching(net, a, b, dataset.train, examples=MATCH_EXAMPLES)
    save_state(Path(out), permuted)
    params = [k for k, _ in net.named_parameters()]
    return dict(groups=len(permutation_spec(net).groups), before=distance(a, b, params),
                after=distance(a, permuted, params))
