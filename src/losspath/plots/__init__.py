"""Figures in paper conventions: labelled axes, colour-blind-safe colours, saved as PNG and PDF."""
from .common import PALETTE, save_figure, setup_style

__all__ = ["PALETTE", "save_figure", "setup_style"]
