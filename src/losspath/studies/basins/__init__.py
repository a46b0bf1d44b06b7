"""Liao & Poggio, "Theory II: Landscape of the Empirical Risk in Deep Learning" (2017): the basins picture.

Six parts, each composed from the library (Hparams with init_from/perturb → training.train → evaluate /
lines.run_line / lines.interpolated_state → mds → figures):

1. Polynomial nets (Fig. 2): the same convnet with ReLU and with PolyReLU (least-squares fit to ReLU).
2. Branching SGD trajectories (Fig. 3): S stages of K runs; runs 1..K/2 of stage s start from P, the last
   model of run 1 of stage s−1, runs K/2+1..K from P perturbed layer-wise by N(0, (c·layer std)²); stage 1
   starts from the seeded initialization. Every run has its own data order; weights are saved every epoch.
3. MDS (Fig. 3) of one layer's weights (layer ℓ = the ℓ-th weight tensor, see losspath.mds) over all the
   collected models, of the later stages alone, and of each stage alone.
4. Full-batch GD with branches (Fig. 4): branch off the main trajectory at given epochs with a 0.25·std
   perturbation, continue both to the same last epoch, and evaluate main, branch and their average
   (lines.interpolated_state at α = 0.5) epoch by epoch on the whole training set.
5. Flatness (Fig. 5): perturb the last GD model by 0.1·std, retrain with GD, R repeats; error and loss
   curves, MDS of the repeats, confusion matrices and prediction disagreement of the converged models.
6. Lines between models (Fig. 1E): training error and loss along the straight line parent → child and
   between siblings, for the SGD branches, the GD branches and the flatness repeats; barrier heights.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import List, Optional

import typer

from ...cli_options import dataclass_options
from ...errors import LosspathError
from ...executors import make_executor
from ...jobs import cached_dataset, submit_trainings
from ...runtime import Runtime, torch_threads
from ...store import Run
from ..harness import echo_result, finish_study, gathered, study_app

from .config import (BARRIER_TOL, DEFAULT_DATA, PARTS, Config, base_hparams, parse_epochs, parse_parts,
                     run_hparams)


def run_study(data=DEFAULT_DATA, parts=PARTS, *, config: Config | None = None, out: str | Path = "results/basins",
              argv: list[str] | None = None, runtime: Runtime | None = None) -> dict:
    """Run (or reuse) the chosen parts on every data set in `data`; write the CSVs, figures, summary.csv,
    findings.txt and study.json to `out`. Returns the tables (pandas, each with a `data` column), the
    figure paths, the printed text and the wall time."""
    import pandas as pd

    from ...mds import layer_keys
    from ...training import model_for
    from . import parts as basins_parts

    runtime, out, started = (runtime or Runtime()).checked(), Path(out), time.time()
    parts = parse_parts(parts)
    config = config or Config()
    configs = [dataclasses.replace(config, data=str(d).strip().lower()).validate() for d in dict.fromkeys(data)]
    if not configs:
        raise LosspathError("Give at least one data set (--data).")
    datasets = {c.data: cached_dataset(c.data, runtime.data_root) for c in configs}  # missing files fail early
    for c in configs:  # so do a network that does not fit the data and a bad --layer
        layer_keys(model_for(base_hparams(c), datasets[c.data]), c.layer)
    out.mkdir(parents=True, exist_ok=True)
    hparams = [hp for c in configs for hp in run_hparams(c, parts)]
    tables: dict[str, list] = {}
    figures = []
    with make_executor(runtime, len(hparams)) as ex:
        trainings = submit_trainings(ex, hparams, runtime)
        runs = {run_id: Run.open(d) for run_id, d in gathered(ex, trainings, "training").items()}
        with torch_threads(runtime.threads):
            for cfg in configs:
                result = basins_parts.run_parts(cfg, parts, datasets[cfg.data], runs, ex=ex, runtime=runtime, out=out)
                for name, frame in result["tables"].items():
                    tables.setdefault(name, []).append(frame.assign(data=cfg.data))
                figures += result["figures"]
    from .figures import CAPTIONS

    frames = {name: _data_first(pd.concat(parts_, ignore_index=True)) for name, parts_ in tables.items()}
    return finish_study(out, study="basins", tables=frames, figures=figures, text=describe(frames), runtime=runtime,
                        started=started, settings={c.data: dict(dataclasses.asdict(c), model=c.model_name)
                                                   for c in configs},
                        options=dict(parts=parts), argv=argv, title="Liao & Poggio, Theory II: basins of the empirical risk",
                        captions={f"{c.data}_{stem}": text for c in configs for stem, text in CAPTIONS.items()},
                        summary_keys=["data", "part", "item", "metric"])


def _data_first(frame):
    return frame[["data"] + [c for c in frame.columns if c != "data"]]


def describe(tables: dict) -> str:
    """The printed summary: per data set and part, what the runs show next to the paper's claim."""
    from .parts import describe_data

    summary = tables.get("summary")
    if summary is None or summary.empty:
        return "no parts were run"
    blocks = [describe_data(tables, name, BARRIER_TOL) for name in dict.fromkeys(summary.data)]
    return "\n".join(blocks)


@dataclass_options(Config, skip=("data",), after="data", unset=("model",))  # --data is repeatable
def cli(
    part: Optional[List[int]] = typer.Option(None, "--part", "-p", help="Repeatable, 1-6 (default: all)."),
    data: Optional[List[str]] = typer.Option(None, "--data", help="Repeatable (default: digits and mnist1d); "
                                             "also cifar10, mnist (files under --data-root)."),
    out: Path = typer.Option(Path("results/basins"), "--out", help="Output directory."),
    runtime: Runtime = None,
    **fields,
):
    """Liao & Poggio 2017 (Theory II, Figures 2-5): polynomial nets, branching SGD, MDS, GD branches with
    averaging, flatness, and lines between parents and children.

    \b
    Examples:
      losspath reproduce basins
      losspath reproduce basins --part 2 --part 3 --layer all
      losspath reproduce basins --data cifar10 --data-root ~/data --stages 12 --runs 8 --epochs 10 \\
          --branch-at 0,10,50,200 --gd-epochs 400 --flat-epochs 200
    """
    import sys

    config = Config(**{**fields, "model": fields["model"] or "", "branch_at": parse_epochs(fields["branch_at"])})
    result = run_study(data or DEFAULT_DATA, part or PARTS, config=config, out=out, argv=sys.argv[1:], runtime=runtime)
    echo_result(result, out, "summary.csv, findings.txt, the part tables")


app = study_app(cli)
