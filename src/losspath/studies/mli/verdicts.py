"""What the MLI-plateau sweep says about Wang et al. 2023's claims, per cell and per regime.

A cell is one (data set, depth, init scale) with its seeds. Only converged nets count. A cell's regime comes
from the median init-dominance ratio r of its converged bias-ful nets (std of the initial logits ÷ spread of
the final logits' class means, losspath.metrics.init_dominance): r < INSIDE is the paper's regime (the
trained offsets between classes dwarf the init's outputs), r ≥ OUTSIDE is init-dominated (the random init
decides the start of the line; the paper's claim says nothing there), between is a transition. Inside the
regime the claims are checked seed by seed: biases lengthen the error plateau (bias-ful vs bias-free twin),
and the homogeneous schemes shorten it.
"""
from __future__ import annotations

import math

from ...metrics import REGIME_INSIDE as INSIDE, REGIME_OUTSIDE as OUTSIDE, rank_correlation, regime_of

MARGIN = 0.05  # a plateau counts as longer when it ends at least this much later (in α)
NO_PLATEAU = 0.1  # a cell whose bias-ful nets' error plateau ends before this (mean α) has no plateau to explain
PLATEAU = "error_plateau_end_chance"
KEYS = ["dataset", "depth", "init_scale"]


def _longer(a, b) -> tuple[int, int]:
    """(seeds where a's plateau ends at least MARGIN later than b's, seeds compared); a, b indexed by replicate."""
    both = a.index.intersection(b.index)
    return int(((a[both] - b[both]) >= MARGIN).sum()), len(both)


def cell_table(summary):
    """One row per cell: regime, mean ± std plateau end per variant, seeds where biases / the schemes matter."""
    import pandas as pd

    s = summary[(summary.family == "mlp") & (summary.status == "converged")]
    rows = []
    for key, cell in s.groupby(KEYS, sort=True):
        def plateau(bias, scheme):
            v = cell[(cell.bias == bias) & (cell.scheme == scheme)]
            return v.set_index("replicate")[PLATEAU]

        ful, free = plateau(True, "all"), plateau(False, "all")
        hom, out = plateau(True, "homogeneous"), plateau(True, "homogeneous_output")
        ratio = float(cell[cell.bias & (cell.scheme == "all")].ratio_logits.median()) if len(ful) else math.nan
        row = dict(zip(KEYS, key), ratio=ratio, regime=regime_of(ratio), seeds=len(ful), free_seeds=len(free))
        for name, v in (("biases", ful), ("bias_free", free), ("homogeneous", hom), ("homogeneous_output", out)):
            row[name], row[name + "_std"] = v.mean(), v.std(ddof=0)
        row["biases_longer"], row["pairs"] = _longer(ful, free)
        row["homogeneous_shorter"], _ = _longer(ful, hom)
        row["output_shorter"], _ = _longer(ful, out)
        row["common_share"] = float(cell[cell.bias & (cell.scheme == "all")].common_class_share.mean())
        row["bias_argmax_share"] = float(cell[cell.bias & (cell.scheme == "all")].bias_argmax_share.mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _agree(count: int, total: int, plateau: float) -> str:
    """A claim checked seed by seed: agrees when it holds for more than half of the compared seeds; "no
    plateau" when the bias-ful nets have none (mean end < NO_PLATEAU), so there is nothing to lengthen or cut."""
    if total == 0:
        return "n/a"
    if plateau < NO_PLATEAU and 2 * count <= total:
        return f"no plateau {count}/{total}"
    return f"agrees {count}/{total}" if 2 * count > total else f"disagrees {count}/{total}"


def describe(tables: dict, split: str = "train", training: dict | None = None) -> str:
    """The printed findings: convergence, the per-cell table, and verdicts inside and outside the regime."""
    runs, summary = tables["runs"], tables["summary"]
    training = training or {}
    lines = [f"MLI plateau (Wang et al. 2023): {len(runs)} nets, lines init → final on the {split} split. Error "
             f"plateau end = first α > 0 where the error has fallen 10% of the way from chance (1 − 1/K) to its "
             f"final value; trained with SGD lr {training.get('lr')} momentum {training.get('momentum')} to training "
             f"error ≤ {training.get('stop_at_train_error')} (cap {training.get('steps')})."]
    bad = runs[runs.status != "converged"]
    lines.append(f"converged: {int((runs.status == 'converged').sum())} of {len(runs)}"
                 + ("; not converged or diverged (excluded from the verdicts): " + ", ".join(
                     f"{r.dataset} {r.depth}×{r.init_scale:g}{'' if r.bias else ' nobias'} s{r.replicate}"
                     + (f" ({r.train_error:.2f})" if isinstance(r.train_error, float) and math.isfinite(r.train_error)
                        else f" ({r.status})") for r in bad.itertuples()) if len(bad) else ""))
    cells = cell_table(summary)
    if cells.empty:
        lines.append("no net converged: no cell can be checked against the paper's claim (raise the cap, --steps)")
        return "\n".join(lines)
    lines.append(f"regime per cell from r = std(initial logits) ÷ spread of the final logits' class means (median over "
                 f"seeds): inside the paper's regime r < {INSIDE}, init-dominated r ≥ {OUTSIDE}.")
    lines.append("  data    depth init     r        regime         | error plateau end (mean ± std over seeds): biases / "
                 "bias-free / homogeneous / output-homog. | biases lengthen it; homogeneous, output-homog. shorten it")
    verdicts = {}
    for c in cells.itertuples():
        v = (_agree(c.biases_longer, c.pairs, c.biases), _agree(c.homogeneous_shorter, c.seeds, c.biases),
             _agree(c.output_shorter, c.seeds, c.biases))
        verdicts[c.Index] = v
        lines.append(f"  {c.dataset:7s} {c.depth:5d} {c.init_scale:<5g} {c.ratio:<8.2g} {c.regime:14s} | "
                     + " / ".join(f"{getattr(c, k):.2f}±{getattr(c, k + '_std'):.2f}"
                                  for k in ("biases", "bias_free", "homogeneous", "homogeneous_output"))
                     + " | " + "; ".join(v))
    for regime, label in (("inside", "inside the paper's regime"), ("between", "between the regimes"),
                          ("init-dominated", "outside the paper's regime (init-dominated)")):
        part = cells[cells.regime == regime]
        if part.empty:
            continue
        claims = []
        for i, claim in enumerate(("biases lengthen the error plateau", "homogeneous biases (α^ℓ) shorten it",
                                   "the output bias alone (α^L) shortens it")):
            def cells_with(word):
                return [f"{c.depth}×{c.init_scale:g}" for c in part.itertuples() if verdicts[c.Index][i].startswith(word)]

            counts = [f"{word} in {len(found)}" + (f" ({', '.join(found)})" if found else "")
                      for word in ("agrees", "disagrees", "no plateau") for found in [cells_with(word)] if found]
            claims.append(f"{claim}: " + ", ".join(counts) + f" of {len(part)} cells")
        text = f"{label}: " + "; ".join(claims)
        text += f"; mean plateau end {part.biases.mean():.2f} with biases vs {part.bias_free.mean():.2f} without"
        if regime != "inside":
            text += " — the paper's claim is not about these nets; agreement here says nothing about it"
        lines.append(text)
        if regime == "inside":
            lines.append(f"  on the plateau (bias-ful nets, scheme all): {part.common_share.mean():.0%} of examples "
                         f"are predicted as one common class, {part.bias_argmax_share.mean():.0%} as the argmax of the "
                         f"output bias (a common class that is not the output bias's argmax comes from hidden biases)")
            inside = summary[(summary.status == "converged") & summary.bias & (summary.scheme == "all")
                             & (summary.family == "mlp")].merge(part[KEYS], on=KEYS)
            rho_d = rank_correlation(inside.depth, inside[PLATEAU])
            rho_s = rank_correlation(inside.init_scale, inside[PLATEAU])
            lines.append(f"  inside the regime, Spearman ρ(depth, plateau end) = {rho_d:+.2f} (paper: deeper → longer), "
                         f"ρ(init scale, plateau end) = {rho_s:+.2f} (paper: smaller init → longer), "
                         f"{len(inside)} nets")
    if not (cells.regime == "inside").any():
        lines.append("no cell is inside the paper's regime: this run cannot check the paper's claim")
    flagged = summary[(summary.scheme == "all") & summary.init_dominated_loss]
    lines.append(f"loss: {len(flagged)} of {int((summary.scheme == 'all').sum())} lines start above 1.5·log K "
                 f"(init-dominated loss); for those, a loss plateau measured from α = 0 is an artifact of the start")
    return "\n".join(lines)
