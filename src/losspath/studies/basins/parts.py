"""The six parts of the basins study (losspath.studies.basins): train or reuse the runs, evaluate, tabulate.

Every part returns tidy pandas tables; `summary` rows are (part, item, metric, value). Runs come from
`training.train` (found in the store when they exist), lines from `lines.run_line` (cached in the run store),
averages from `lines.interpolated_state` at α = 0.5, embeddings from `losspath.mds`.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from ...checkpoints import load_state
from ...data import Dataset
from ...device import resolve_device
from ...jobs import line_job
from ...lines import interpolated_state
from ...mds import embed_distances, layer_keys, pairwise_distances, flatten_states, stress1
from ...metrics import barrier, distance, max_increase
from ...models import fit_relu_polynomial
from ...store import Run
from ...training import CheckpointEvaluator, model_for
from .config import Config, NEEDS, branch_hparams, flat_hparams, gd_hparams, polynomial_hparams


MINIMUM_ERROR = 0.05  # a model "is near a zero-error minimum" below this training error (for the findings text)


def _epochs(run: Run) -> list[tuple[int, int]]:
    """(epoch, iteration) of every saved checkpoint of `run` that lies on an epoch boundary."""
    per = int(run.info()["iterations_per_epoch"])
    return [(it // per, it) for it in run.saved_steps() if it % per == 0]


def _metrics(run: Run) -> pd.DataFrame:
    """metrics.csv with an `epoch` column (the training loop logs at every epoch boundary)."""
    frame = pd.read_csv(run.metrics_file)
    return frame.assign(epoch=frame.step // int(run.info()["iterations_per_epoch"]))


def _norm(state: dict, names: list[str]) -> float:
    """‖θ‖ over the parameters `names`: the scale against which distances between models are read."""
    return float(sum((state[k].double() ** 2).sum() for k in names) ** 0.5)


def _rows(part: int, item: str, **metrics) -> list[dict]:
    return [dict(part=part, item=item, metric=k, value=float(v)) for k, v in metrics.items()]


def run_parts(cfg: Config, parts: list[int], data: Dataset, runs: dict[str, Run], *, ex, runtime, out: Path) -> dict:
    """Evaluate the chosen parts from their trained `runs` (run id → Run, see config.run_hparams) and draw
    their figures; the lines of part 6 go to executor `ex`."""
    from . import figures as plots

    device = resolve_device(runtime.device)
    needed = {p for part in parts for p in NEEDS[part]}

    def fit(hp):
        return runs[hp.run_id()]

    tables: dict[str, pd.DataFrame] = {}
    summary: list[dict] = []
    prefix = out / f"{cfg.data}_"
    figures: list[Path] = []
    scorer = CheckpointEvaluator(model_for(polynomial_hparams(cfg)["relu"], data), data, device)

    if 1 in parts:
        tables["polynomial"], rows = part1_polynomial(cfg, data, fit, device)
        summary += rows
        figures += plots.fig_polynomial(tables["polynomial"], cfg.poly_degree, cfg.poly_interval, prefix)
    branch_runs = {}
    if 2 in needed:
        for key, hp in branch_hparams(cfg).items():  # stage by stage: stage s needs stage s−1's run 1
            branch_runs[key] = fit(hp)
    if 2 in parts:
        tables["branches"], tables["branch_curves"], rows = part2_branches(cfg, branch_runs, scorer)
        summary += rows
        figures += plots.fig_branches(tables["branch_curves"], cfg, prefix)
    mds_frames = []
    if 3 in parts:
        frame, rows = part3_mds(cfg, branch_runs, scorer)
        mds_frames.append(frame)
        summary += rows
        figures += plots.fig_mds(frame, cfg, prefix)
    gd = None
    if 4 in needed:
        main_hp, branch_hps = gd_hparams(cfg)
        gd = (fit(main_hp), {b: fit(hp) for b, hp in branch_hps.items()})
    if 4 in parts:
        tables["gd"], frame, rows = part4_gd(cfg, *gd, scorer)
        mds_frames.append(frame)
        summary += rows
        figures += plots.fig_gd(tables["gd"], frame, cfg, prefix)
    flat = None
    if 5 in needed:
        flat = {r: fit(hp) for r, hp in flat_hparams(cfg).items()}
    if 5 in parts:
        tables["flat"], tables["confusion"], frame, rows = part5_flat(cfg, gd[0], flat, scorer)
        mds_frames.append(frame)
        summary += rows
        figures += plots.fig_flat(tables["flat"], tables["confusion"], frame, prefix)
    if 6 in parts:
        tables["lines"], tables["line_summary"], rows = part6_lines(cfg, branch_runs, gd, flat, ex, runtime)
        summary += rows
        figures += plots.fig_lines(tables["lines"], tables["line_summary"], prefix)
    if mds_frames:
        tables["mds"] = pd.concat(mds_frames, ignore_index=True)
    tables["summary"] = pd.DataFrame(summary, columns=["part", "item", "metric", "value"])
    return dict(tables=tables, figures=figures)


# --------------------------------------------------------------------------------------- 1: polynomial nets

def part1_polynomial(cfg: Config, data: Dataset, fit, device):
    """Fig. 2: ReLU net vs polynomial net, same init and data order. Curves from metrics.csv (test split
    exact; `train_batches` is the mean over the epoch's training batches); final errors evaluated exactly."""
    frames, rows = [], []
    _, fit_error = fit_relu_polynomial(cfg.poly_degree, cfg.poly_interval)
    for net, hp in polynomial_hparams(cfg).items():
        run = fit(hp)
        scorer = CheckpointEvaluator(model_for(hp, data), data, device)
        last = run.done()["last_step"]
        train_loss, train_error = scorer.checkpoint(run, last, "train")
        test_loss, test_error = scorer.checkpoint(run, last, "test")
        frames.append(_metrics(run).assign(net=net, run=run.dir.name))
        rows += _rows(1, f"{net} net", train_error=train_error, test_error=test_error, train_loss=train_loss,
                      test_loss=test_loss)
    rows += _rows(1, "polynomial fit", max_abs_error=fit_error, degree=cfg.poly_degree, interval=cfg.poly_interval)
    frame = pd.concat(frames, ignore_index=True)[["net", "epoch", "step", "split", "loss", "error", "run"]]
    return frame, rows


# ---------------------------------------------------------------------------------- 2: branching trajectories

def part2_branches(cfg: Config, runs: dict, scorer: CheckpointEvaluator):
    """Fig. 3's runs: per run its start, final training/test error and how far it moved."""
    table, curves, rows = [], [], []
    for (s, k), run in runs.items():
        hp = run.hparams
        last = run.done()["last_step"]
        end = load_state(run.checkpoint(last))
        start = load_state(run.checkpoint(0))
        parent = load_state(runs[s - 1, 1].checkpoint(runs[s - 1, 1].done()["last_step"])) if s > 1 else \
            load_state(runs[1, 1].checkpoint(0))  # stage 1: P₀ is the seeded initialization
        train_loss, train_error = scorer.checkpoint(run, last, "train")
        test_loss, test_error = scorer.checkpoint(run, last, "test")
        start_kind = ("init" if s == 1 else "P") + (" + noise" if hp.perturb else "")
        table.append(dict(stage=s, run=k, start=start_kind, perturbed=bool(hp.perturb), init_from=hp.init_from,
                          data_seed=hp.data_seed, train_loss=train_loss, train_error=train_error,
                          test_loss=test_loss, test_error=test_error,
                          distance_start_to_end=distance(start, end, scorer.names),
                          distance_parent_to_start=distance(parent, start, scorer.names),
                          distance_parent_to_end=distance(parent, end, scorer.names), run_dir=run.dir.name))
        m = _metrics(run)
        curves.append(m.assign(stage=s, run=k, global_epoch=(s - 1) * cfg.epochs + m.epoch,
                               perturbed=bool(hp.perturb)))
        rows += _rows(2, f"stage {s} run {k}", train_error=train_error, test_error=test_error,
                      distance_parent_to_end=table[-1]["distance_parent_to_end"])
    table = pd.DataFrame(table)
    for s, per in table.groupby("stage"):
        rows += _rows(2, f"stage {s}", mean_train_error=per.train_error.mean(), mean_test_error=per.test_error.mean(),
                      spread_test_error=per.test_error.max() - per.test_error.min())
    curves = pd.concat(curves, ignore_index=True)[["stage", "run", "perturbed", "epoch", "global_epoch", "split",
                                                   "loss", "error"]]
    return table, curves, rows


# ------------------------------------------------------------------------------------------------ 3: MDS

def _embed(frame: pd.DataFrame, dist: np.ndarray, rows: list, part: int, panel: str, index: np.ndarray,
           seed: int) -> pd.DataFrame:
    sub = dist[np.ix_(index, index)]
    xy = embed_distances(sub, random_state=seed)
    rows += _rows(part, f"MDS {panel}", points=len(index), stress1=stress1(sub, xy))
    return frame.iloc[index].assign(panel=panel, x=xy[:, 0], y=xy[:, 1])


def part3_mds(cfg: Config, runs: dict, scorer: CheckpointEvaluator):
    """Fig. 3: every collected model (each epoch of each run, start included) as a point; one embedding of
    all stages, one of the later stages, one per stage."""
    keys = layer_keys(scorer.model, cfg.layer)
    meta, states = [], []
    for (s, k), run in runs.items():
        for epoch, it in _epochs(run):
            meta.append(dict(part=3, trajectory=f"run {k}", stage=s, run=k, epoch=epoch,
                             global_epoch=(s - 1) * cfg.epochs + epoch))
            states.append(load_state(run.checkpoint(it)))
    frame = pd.DataFrame(meta)
    dist = pairwise_distances(flatten_states(states, keys))
    rows: list[dict] = []
    panels = [_embed(frame, dist, rows, 3, "all stages", np.arange(len(frame)), cfg.seed)]
    late = np.flatnonzero(frame.stage.to_numpy() >= cfg.late_stage)
    panels.append(_embed(frame, dist, rows, 3, f"stages {cfg.late_stage}-{cfg.stages}", late, cfg.seed))
    for s in range(1, cfg.stages + 1):
        panels.append(_embed(frame, dist, rows, 3, f"stage {s}", np.flatnonzero(frame.stage.to_numpy() == s), cfg.seed))
    out = pd.concat(panels, ignore_index=True).assign(layer=",".join(keys))
    return out, rows


# -------------------------------------------------------------------------------------- 4: GD with branches

def part4_gd(cfg: Config, main: Run, branches: dict[int, Run], scorer: CheckpointEvaluator):
    """Fig. 4: training error of the main GD trajectory, of each branch and of their epoch-by-epoch average
    ½(θ_main(b + j) + θ_branch(j)), all on the whole training set; and the MDS of the main trajectory with its
    branches."""
    T = cfg.gd_epochs
    iteration = dict(_epochs(main))  # epoch → iteration (one per epoch in full-batch GD, but said so here)
    main_states = {e: load_state(main.checkpoint(it)) for e, it in iteration.items()}
    table, rows = [], []
    for e in range(T + 1):
        loss, error = scorer.checkpoint(main, iteration[e])
        table.append(dict(trajectory="main", branch_at=-1, epoch=e, train_loss=loss, train_error=error))
    main_errors = {r["epoch"]: r["train_error"] for r in table}
    meta = [dict(part=4, trajectory="main", stage=0, run=0, epoch=e, global_epoch=e) for e in range(T + 1)]
    states = [main_states[e] for e in range(T + 1)]
    main_test = scorer.checkpoint(main, iteration[T], "test")
    rows += _rows(4, "main", final_train_error=table[-1]["train_error"], final_train_loss=table[-1]["train_loss"],
                  final_test_error=main_test[1], norm_at_end=_norm(main_states[T], scorer.names))
    for b, run in branches.items():
        for j, it in _epochs(run):
            branch_state = load_state(run.checkpoint(it))
            loss, error = scorer.checkpoint(run, it)
            table.append(dict(trajectory="branch", branch_at=b, epoch=b + j, train_loss=loss, train_error=error))
            average = interpolated_state(main_states[b + j], branch_state, 0.5)
            loss, error = scorer.state(average, "train")
            table.append(dict(trajectory="average", branch_at=b, epoch=b + j, train_loss=loss, train_error=error))
            meta.append(dict(part=4, trajectory=f"branch@{b}", stage=0, run=b, epoch=b + j, global_epoch=b + j))
            states.append(branch_state)
        end = load_state(run.checkpoint(run.done()["last_step"]))
        per = pd.DataFrame([r for r in table if r["branch_at"] == b])
        final = per[per.epoch == T].set_index("trajectory")
        start = per[per.epoch == b].set_index("trajectory")
        rows += _rows(4, f"branch@{b}", main_train_error_at_branch=main_errors[b],
                      train_error_after_perturbation=start.train_error["branch"],
                      final_train_error=final.train_error["branch"],
                      final_test_error=scorer.checkpoint(run, run.done()["last_step"], "test")[1],
                      average_final_train_error=final.train_error["average"],
                      average_max_train_error=per[per.trajectory == "average"].train_error.max(),
                      distance_at_branch=distance(main_states[b], load_state(run.checkpoint(0)), scorer.names),
                      distance_at_end=distance(main_states[T], end, scorer.names))
    frame = pd.DataFrame(meta)
    keys = layer_keys(scorer.model, cfg.layer)
    dist = pairwise_distances(flatten_states(states, keys))
    mds = _embed(frame, dist, rows, 4, "GD main and branches", np.arange(len(frame)), cfg.seed)
    return pd.DataFrame(table), mds.assign(layer=",".join(keys)), rows


# ------------------------------------------------------------------------------------------ 5: flatness

def part5_flat(cfg: Config, main: Run, repeats: dict[int, Run], scorer: CheckpointEvaluator):
    """Fig. 5: perturb M_final (the GD main trajectory's last model) by flat_perturb·std and retrain with GD,
    R times: error/loss curves on both splits, MDS of the R trajectories (and of repeat 1 alone), confusion
    matrices of the converged models and how often they disagree."""
    data = scorer.data
    final_state = load_state(main.checkpoint(main.done()["last_step"]))
    rows = _rows(5, "M_final", train_error=scorer.state(final_state, "train")[1],
                 test_error=scorer.state(final_state, "test")[1], norm=_norm(final_state, scorer.names))
    curves, meta, states, ends, starts = [], [], [], {0: final_state}, {}
    for r, run in repeats.items():
        starts[r] = load_state(run.checkpoint(0))
        # test metrics as the training loop logged them (exact, every epoch); training metrics evaluated here
        test = _metrics(run).query("split == 'test'").set_index("epoch")
        for e, it in _epochs(run):
            loss, error = scorer.checkpoint(run, it, "train")
            curves.append(dict(repeat=r, epoch=e, split="train", loss=loss, error=error))
            curves.append(dict(repeat=r, epoch=e, split="test", loss=test.loss[e], error=test.error[e]))
            meta.append(dict(part=5, trajectory=f"repeat {r}", stage=0, run=r, epoch=e, global_epoch=e))
            states.append(load_state(run.checkpoint(it)))
        ends[r] = states[-1]
    curves = pd.DataFrame(curves)
    preds = {r: scorer.predictions(state, data.test) for r, state in ends.items()}
    y = data.test.targets.numpy()
    k = data.num_classes
    confusion = []
    for r, p in preds.items():
        counts = np.bincount(y * k + p, minlength=k * k).reshape(k, k)
        confusion += [dict(repeat=r, model="M_final" if r == 0 else f"repeat {r}", true=t, predicted=q,
                           count=int(counts[t, q])) for t in range(k) for q in range(k)]
    for r, run in repeats.items():
        c = curves[curves.repeat == r]
        first, last = c[c.epoch == 0].set_index("split"), c[c.epoch == c.epoch.max()].set_index("split")
        rows += _rows(5, f"repeat {r}", train_error_after_perturbation=first.error["train"],
                      final_train_error=last.error["train"], final_test_error=last.error["test"],
                      final_train_loss=last.loss["train"],
                      perturbation_size=distance(final_state, starts[r], scorer.names),
                      distance_to_M_final=distance(final_state, ends[r], scorer.names),
                      test_disagreement_with_M_final=float(np.mean(preds[r] != preds[0])))
    pairs = list(itertools.combinations(sorted(repeats), 2))
    if pairs:
        rows += _rows(5, "repeats pairwise",
                      mean_distance=np.mean([distance(ends[i], ends[j], scorer.names) for i, j in pairs]),
                      mean_test_disagreement=np.mean([np.mean(preds[i] != preds[j]) for i, j in pairs]))
    frame = pd.DataFrame(meta)
    keys = layer_keys(scorer.model, cfg.layer)
    dist = pairwise_distances(flatten_states(states, keys))
    panels = [_embed(frame, dist, rows, 5, f"{len(repeats)} repeats", np.arange(len(frame)), cfg.seed),
              _embed(frame, dist, rows, 5, "repeat 1", np.flatnonzero(frame.run.to_numpy() == 1), cfg.seed)]
    mds = pd.concat(panels, ignore_index=True).assign(layer=",".join(keys))
    return curves, pd.DataFrame(confusion), mds, rows


# -------------------------------------------------------------------------------------- 6: between models

def _pairs(cfg: Config, branch_runs: dict, gd, flat) -> list[dict]:
    """Every line of part 6: (family, kind, pair, a, b) with a and b (run, iteration) endpoints."""
    def last(run):
        return run, run.done()["last_step"]

    lines = []
    if branch_runs:
        for s in range(1, cfg.stages + 1):
            for k in range(1, cfg.runs + 1):
                if s > 1:
                    kind = "perturbed child" if branch_runs[s, k].hparams.perturb else "child"
                    lines.append(dict(family="SGD branches", kind="parent-child", pair=f"P → {kind}", stage=s,
                                      a_name=f"P (stage {s - 1} run 1)", b_name=f"stage {s} run {k}",
                                      a=last(branch_runs[s - 1, 1]), b=last(branch_runs[s, k])))
            for i, j in itertools.combinations(range(1, cfg.runs + 1), 2):
                pi, pj = (bool(branch_runs[s, x].hparams.perturb) for x in (i, j))
                pair = "both perturbed" if pi and pj else ("one perturbed" if pi or pj else "both from P")
                lines.append(dict(family="SGD branches", kind="siblings", pair=pair, stage=s,
                                  a_name=f"stage {s} run {i}", b_name=f"stage {s} run {j}",
                                  a=last(branch_runs[s, i]), b=last(branch_runs[s, j])))
    if gd:
        main, branches = gd
        for b, run in branches.items():
            lines.append(dict(family="GD branches", kind="parent-child", pair=f"main@{b} → branch end", stage=b,
                              a_name=f"main epoch {b}", b_name=f"branch@{b} end", a=(main, b), b=last(run)))
            lines.append(dict(family="GD branches", kind="siblings", pair=f"main end ↔ branch@{b} end", stage=b,
                              a_name="main end", b_name=f"branch@{b} end", a=last(main), b=last(run)))
    if flat:
        main = gd[0]
        for r, run in flat.items():
            lines.append(dict(family="flatness repeats", kind="parent-child", pair="M_final → repeat", stage=r,
                              a_name="M_final", b_name=f"repeat {r} end", a=last(main), b=last(run)))
        for i, j in itertools.combinations(sorted(flat), 2):
            lines.append(dict(family="flatness repeats", kind="siblings", pair="repeat ↔ repeat", stage=i,
                              a_name=f"repeat {i} end", b_name=f"repeat {j} end", a=last(flat[i]), b=last(flat[j])))
    return lines


def part6_lines(cfg: Config, branch_runs: dict, gd, flat, ex, runtime):
    """Fig. 1E: training loss and error along θ(α) = (1 − α)·θ_a + α·θ_b for parents → children and between
    siblings; barrier = the largest rise above the chord between the endpoints (losspath.metrics.barrier)."""
    alphas = np.linspace(0.0, 1.0, cfg.points)
    options = dict(split="train", alphas=alphas)
    pairs = _pairs(cfg, branch_runs, gd, flat)
    results = ex.gather([ex.submit(line_job, str(line["a"][0].dir), line["a"][1], line["b"][1], options, runtime,
                                   str(line["b"][0].dir)) for line in pairs], "lines")
    curves, table = [], []
    for i, (line, result) in enumerate(zip(pairs, results)):
        line = {k: v for k, v in line.items() if k not in ("a", "b")}
        curves.append(pd.DataFrame(dict(line=i, **line, alpha=alphas, loss=result.loss, error=result.error)))
        table.append(dict(line=i, **line, distance=result.distance, error_a=result.error[0],
                          error_b=result.error[-1], error_barrier=barrier(alphas, result.error),
                          loss_barrier=barrier(alphas, result.loss), max_error_increase=max_increase(result.error),
                          midpoint_error=float(np.interp(0.5, alphas, result.error))))
    table = pd.DataFrame(table)
    rows = []
    for (family, kind), per in table.groupby(["family", "kind"], sort=False):
        rows += _rows(6, f"{family}: {kind}", lines=len(per), mean_error_barrier=per.error_barrier.mean(),
                      max_error_barrier=per.error_barrier.max(), mean_loss_barrier=per.loss_barrier.mean(),
                      max_loss_barrier=per.loss_barrier.max(), mean_distance=per.distance.mean())
    return pd.concat(curves, ignore_index=True), table, rows


# ------------------------------------------------------------------------------------------------ findings

def describe_data(tables: dict, data: str, tol: float) -> str:
    """What the runs on `data` show, part by part, next to the paper's claims."""
    s = tables["summary"]
    s = s[s.data == data]

    def get(part, item, metric):
        v = s[(s.part == part) & (s.item == item) & (s.metric == metric)].value
        return float(v.iloc[0]) if len(v) else float("nan")

    out = [f"== {data} =="]
    parts = set(s.part)
    if 1 in parts:
        r, p = get(1, "relu net", "test_error"), get(1, "poly net", "test_error")
        out.append(f"1 polynomial net (degree {int(get(1, 'polynomial fit', 'degree'))} on ±"
                   f"{get(1, 'polynomial fit', 'interval'):g}, max |p − relu| = {get(1, 'polynomial fit', 'max_abs_error'):.3f}): "
                   f"test error {p:.3f} vs ReLU {r:.3f} (train {get(1, 'poly net', 'train_error'):.3f} vs "
                   f"{get(1, 'relu net', 'train_error'):.3f}); paper: performs similarly -> "
                   + ("similar here" if abs(p - r) <= 0.02 else
                      f"the {'polynomial' if p < r else 'ReLU'} net is better here")
                   + f" (|Δ test error| = {abs(p - r):.3f}).")
    if 2 in parts:
        b = tables["branches"]
        b = b[b.data == data]
        last = b[b.stage == b.stage.max()]
        first = b[b.stage == 1]
        un, pe = last[~last.perturbed], last[last.perturbed]
        out.append(f"2 branching SGD: stage 1 mean test error {first.test_error.mean():.3f}, last stage "
                   f"{last.test_error.mean():.3f} (train {last.train_error.mean():.4f}); in the last stage the "
                   f"runs end {un.distance_parent_to_end.mean():.3g} (from P) / {pe.distance_parent_to_end.mean():.3g} "
                   f"(from P + noise) from P, after a perturbation of size {pe.distance_parent_to_start.mean():.3g}; "
                   f"paper: every rerun ends at a slightly different model -> test errors within a stage differ by up to "
                   f"{(b.groupby('stage').test_error.max() - b.groupby('stage').test_error.min()).max():.3f}.")
    if 3 in parts:
        m = s[(s.part == 3) & (s.metric == "stress1")]
        out.append("3 MDS (Stress-1, 0 = distances kept exactly): " + ", ".join(
            f"{i.removeprefix('MDS ')} {v:.3f}" for i, v in zip(m.item, m.value) if not i.startswith("MDS stage ")
        ) + f"; per stage {m[m.item.str.startswith('MDS stage ')].value.mean():.3f} on average.")
    if 4 in parts:
        items = sorted({i for i in s[s.part == 4].item if i.startswith("branch@")}, key=lambda i: int(i[7:]))
        far = [get(4, i, "distance_at_end") for i in items]
        trend = ("decreasing with the branch epoch, as the paper reports" if all(np.diff(far) <= 0) else
                 "not monotone in the branch epoch (paper: later perturbations change the trajectory less)")
        out.append(f"4 full-batch GD: the main trajectory ends at training error "
                   f"{get(4, 'main', 'final_train_error'):.4f}, test error {get(4, 'main', 'final_test_error'):.3f}, "
                   f"‖θ‖ = {get(4, 'main', 'norm_at_end'):.3g}.")
        for i in items:
            out.append(f"  {i}: training error {get(4, i, 'main_train_error_at_branch'):.3f} → "
                       f"{get(4, i, 'train_error_after_perturbation'):.3f} by the perturbation (size "
                       f"{get(4, i, 'distance_at_branch'):.3g}); at the end branch {get(4, i, 'final_train_error'):.4f}, "
                       f"average ½(main + branch) {get(4, i, 'average_final_train_error'):.4f}, "
                       f"branch ↔ main distance {get(4, i, 'distance_at_end'):.3g} "
                       f"({get(4, i, 'distance_at_end') / get(4, i, 'distance_at_branch'):.2f} × the perturbation)")
        if get(4, "main", "final_train_error") > MINIMUM_ERROR:
            out.append(f"  caution: the GD main trajectory is not near a zero-error minimum (training error "
                       f"{get(4, 'main', 'final_train_error'):.3f} > {MINIMUM_ERROR}), which the paper's Figs. 4-5 assume; "
                       f"parts 4-5 here probe the landscape on the way down.")
        out.append(f"  end distances are {trend}; averages of branch and main "
                   + ("never" if all(get(4, i, "average_final_train_error") <= max(get(4, i, "final_train_error"),
                                                                                   get(4, "main", "final_train_error"))
                                     for i in items) else "do not always")
                   + " end at or below the worse of the two (paper: interpolated models perform reasonably).")
        if 2 in parts:
            b = tables["branches"]
            sgd = b[(b.data == data) & (b.stage == b.stage.max()) & (b.run == 1)].test_error.iloc[0]
            out.append(f"  GD vs SGD test error: {get(4, 'main', 'final_test_error'):.3f} vs {sgd:.3f} "
                       f"(paper, CIFAR-10: BGD 0.40, SGD 0.32).")
    if 5 in parts:
        reps = sorted((i for i in set(s[s.part == 5].item) if i.startswith("repeat ") and i[7:].isdigit()),
                      key=lambda i: int(i[7:]))

        def each(metric, fmt=".4f"):
            return ", ".join(format(get(5, i, metric), fmt) for i in reps)

        out.append(f"5 flatness: M_final (GD main end) training error {get(5, 'M_final', 'train_error'):.4f}, "
                   f"‖θ‖ = {get(5, 'M_final', 'norm'):.3g}; perturbation size {each('perturbation_size', '.3g')} "
                   f"→ training error {each('train_error_after_perturbation')}; after retraining "
                   f"{each('final_train_error')} (test {each('final_test_error', '.3f')}).")
        out.append(f"  the repeats end {each('distance_to_M_final', '.3g')} from M_final and "
                   f"{get(5, 'repeats pairwise', 'mean_distance'):.3g} from each other on average, and disagree on "
                   f"{get(5, 'repeats pairwise', 'mean_test_disagreement'):.4f} of the test predictions "
                   f"(paper: they converge to different models with the same low error: a flat minimum).")
    if 6 in parts:
        lt = tables["line_summary"]
        lt = lt[lt.data == data]
        out.append(f"6 lines (training error; barrier = rise above the chord, 'has a barrier' if > {tol:g}):")
        for (family, kind), per in lt.groupby(["family", "kind"], sort=False):
            n_bar = int((per.error_barrier > tol).sum())
            out.append(f"  {family}, {kind}: {n_bar}/{len(per)} with a barrier; error barrier mean "
                       f"{per.error_barrier.mean():.4f}, max {per.error_barrier.max():.4f}; loss barrier max "
                       f"{per.loss_barrier.max():.4f}; distance {per.distance.mean():.3g}")
        inside = lt[lt.family != "GD branches"]
        verdict = ("no barrier inside a basin, as the paper's picture predicts" if (inside.error_barrier <= tol).all()
                   else "barriers between some models the paper would place in one basin")
        out.append(f"  -> SGD branches and flatness repeats: {verdict}.")
    return "\n".join(out)
