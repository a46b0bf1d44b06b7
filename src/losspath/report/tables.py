"""Which rows of a study's CSVs the report shows: small tables whole, summary.csv averaged over replicates,
big tables as their first rows (the report links every full CSV)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

MAX_ROWS = 60  # more rows than this are cut, with a note
PREVIEW_ROWS = 8  # rows shown of a big raw table (curves.csv has one row per α)
REPLICATE_COLUMNS = ("replicate", "seed")
FEW_VALUES = 12  # a float column with at most this many distinct values can identify a row (init_scale)


@dataclass
class TableView:
    """What the report shows of one CSV: `frame` (may be empty), a `note` saying how it was reduced."""

    file: str
    frame: pd.DataFrame
    rows: int  # rows in the file
    note: str = ""
    error: str = ""


def read_csv(path: Path) -> tuple[pd.DataFrame | None, str]:
    try:
        return pd.read_csv(path), ""
    except pd.errors.EmptyDataError:
        return pd.DataFrame(), ""
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as e:
        return None, f"could not be read as CSV ({type(e).__name__})"


def _identifier_like(col: pd.Series) -> bool:
    return (col.dtype == object or pd.api.types.is_string_dtype(col) or pd.api.types.is_bool_dtype(col)
            or pd.api.types.is_integer_dtype(col)
            or (pd.api.types.is_float_dtype(col) and col.nunique(dropna=False) <= FEW_VALUES))


def guess_keys(frame: pd.DataFrame, replicate: str) -> list[str]:
    """The columns that identify a row apart from the replicate. Tidy tables put identifiers first, so: the
    leading identifier-like columns (text, booleans, integers, floats with few values) until they and the
    replicate identify every row, then any further ones that are constant within those groups (a `split`
    column, say) — a column that varies across replicates is a result, not a key."""
    keys: list[str] = []
    unique = False
    for name in frame.columns:
        if name == replicate:
            continue
        col = frame[name]
        if not _identifier_like(col):
            break
        if unique:
            if keys and frame.groupby(keys, dropna=False)[name].nunique(dropna=False).max() > 1:
                break
            keys.append(name)
            continue
        keys.append(name)
        unique = not frame.duplicated(keys + [replicate]).any()
    return keys


def average_replicates(frame: pd.DataFrame, keys: list[str] | None = None) -> tuple[pd.DataFrame, str] | None:
    """Mean over replicates of every numeric column (booleans become fractions) per combination of `keys`
    (guessed when None), with the number of replicates as column `n`; None when the table has no replicate
    column or averaging would not shorten it."""
    replicate = next((c for c in REPLICATE_COLUMNS if c in frame.columns), None)
    if replicate is None:
        return None
    keys = [k for k in (keys if keys is not None else guess_keys(frame, replicate)) if k in frame.columns
            and k != replicate]
    if not keys:
        return None
    values = [c for c in frame.columns if c not in keys and c != replicate]
    numeric = [c for c in values if pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]
    if not numeric:
        return None
    work = frame[keys + numeric].copy()
    for c in numeric:
        work[c] = work[c].astype(float)
    grouped = work.groupby(keys, sort=False, dropna=False)
    out = grouped[numeric].mean()
    out.insert(0, "n", grouped.size())
    out = out.reset_index()
    if len(out) >= len(frame):
        return None
    n = sorted(set(out["n"]))
    count = f"{n[0]}" if len(n) == 1 else f"{n[0]}–{n[-1]}"
    bools = [c for c in numeric if pd.api.types.is_bool_dtype(frame[c])]
    note = (f"Mean over {count} {replicate}s per {' × '.join(keys)} ({len(frame):,} rows in the file)"
            + (f"; {', '.join(bools)}: fraction true" if bools else "") + ".")
    return out, note


def table_view(path: Path, *, summary_keys: list[str] | None = None) -> TableView:
    """What to show of the CSV at `path`: summary.csv averaged over replicates (when it has a replicate or seed
    column) and cut to MAX_ROWS rows; any other table whole up to MAX_ROWS rows, else its first PREVIEW_ROWS."""
    frame, error = read_csv(path)
    if frame is None:
        return TableView(path.name, pd.DataFrame(), 0, error=error)
    rows, note = len(frame), ""
    if path.stem == "summary":
        averaged = average_replicates(frame, summary_keys)
        if averaged is not None:
            frame, note = averaged
    if len(frame) > MAX_ROWS:
        keep = MAX_ROWS if path.stem == "summary" else PREVIEW_ROWS
        note = (note + " " if note else "") + f"First {keep} of {len(frame):,} rows shown."
        frame = frame.head(keep)
    return TableView(path.name, frame, rows, note)
