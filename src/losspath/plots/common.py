"""Shared figure style: the Okabe–Ito colour-blind-safe palette, column-width sizes, PNG + PDF output."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window
import matplotlib.pyplot as plt  # noqa: E402

from ..files import atomic_write  # noqa: E402

# Okabe & Ito (2008), safe for the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
COLUMN_WIDTH = 3.4  # inches, one column of a two-column paper


def setup_style() -> None:
    plt.rcParams.update({
        "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
        "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.prop_cycle": plt.cycler(color=PALETTE),
        "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 150, "savefig.bbox": "tight",
        "pdf.fonttype": 42,
    })


def save_figure(fig, path: str | Path) -> list[Path]:
    """Write `fig` as PATH.png and PATH.pdf (suffix of `path` ignored), atomically; returns both paths."""
    base = Path(path).with_suffix("")
    out = []
    for ext in (".png", ".pdf"):
        target = base.with_suffix(ext)
        atomic_write(target, lambda tmp, ext=ext: fig.savefig(tmp, format=ext[1:]))
        out.append(target)
    plt.close(fig)
    return out
