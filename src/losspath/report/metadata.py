"""`study.json`: what a study ran, with which software, on which device, for how long.

A study writes it next to its CSVs and figures (before `write_report`), so that the report — and anyone who
finds the directory later — can tell how the numbers were made.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import time
from pathlib import Path

from ..files import atomic_write_text

METADATA_FILE = "study.json"


def _jsonable(obj):
    """`json.dumps` fallback: dataclasses as dicts, paths and anything else as strings, sets as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        try:
            return obj.item()
        except (TypeError, ValueError, RuntimeError):
            pass
    return str(obj)


def git_info(cwd: str | Path | None = None) -> dict | None:
    """Commit and dirty flag of the git repository at `cwd` (default: the current directory); None when it is
    not a repository or git is missing."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        top = git("rev-parse", "--show-toplevel").stdout.strip()
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return None
    return dict(commit=head.stdout.strip(), dirty=dirty, repo=top)


def software_versions() -> dict:
    """Versions of losspath, torch, numpy, python and the platform string."""
    import numpy
    import torch

    from .. import __version__

    return dict(losspath=__version__, torch=torch.__version__, numpy=numpy.__version__,
                python=platform.python_version(), platform=platform.platform())


def device_description(device) -> str:
    """`device` in words: the GPU name for CUDA devices, the CPU count for the CPU."""
    import os

    import torch

    name = str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and torch.cuda.is_available():
        try:
            return f"{name} ({torch.cuda.get_device_name(torch.device(name))})"
        except (RuntimeError, AssertionError, ValueError):
            return name
    if name == "cpu":
        return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    return name


def write_study_metadata(out_dir: str | Path, *, study: str, settings: dict, options: dict, seconds: float,
                         device=None, captions: dict[str, str] | None = None, title: str | None = None,
                         argv: list[str] | None = None, summary_keys: list[str] | None = None) -> Path:
    """Write `out_dir/study.json` (atomically) and return its path.

    study: the study's name (e.g. "frankle2020"); settings: what was trained, by name (hparams, seeds);
    options: the arguments the study was called with; seconds: wall time; device: what it ran on;
    captions: one sentence per figure, keyed by the figure's file stem (e.g. "fig1_from_init");
    title: the report's title; argv: the command line, if it came from one; summary_keys: the columns of
    summary.csv that identify a row once replicates are averaged (the report guesses them when absent).
    """
    out = Path(out_dir)
    meta = dict(
        study=study,
        title=title,
        created=time.strftime("%Y-%m-%d %H:%M:%S %z"),
        seconds=round(float(seconds), 2),
        device=device_description(device),
        versions=software_versions(),
        git=git_info(),
        command=None if argv is None else " ".join(["losspath", *map(str, argv)]),
        options=options,
        settings=settings,
        captions=captions or {},
        summary_keys=summary_keys,
    )
    meta = {k: v for k, v in meta.items() if v is not None}
    path = out / METADATA_FILE
    atomic_write_text(path, json.dumps(meta, indent=2, default=_jsonable, ensure_ascii=False) + "\n")
    return path


def read_study_metadata(out_dir: str | Path) -> dict:
    """The contents of `out_dir/study.json`, or {} when it is missing or unreadable (a report still works)."""
    path = Path(out_dir) / METADATA_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


__all__ = ["METADATA_FILE", "read_study_metadata", "software_versions", "git_info", "write_study_metadata"]
