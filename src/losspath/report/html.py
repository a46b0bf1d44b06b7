"""`report.html`: one self-contained page per study output directory, to skim in a browser.

What was run (from `study.json`), the printed findings, every figure (inlined as data URIs, with a caption
and links to its PNG/PDF), one table per CSV (summary.csv averaged over replicates when long) and relative
links to every file. No scripts, no network: styles are inline and images are data, so the file opens the
same from a laptop, a cluster's file browser or an e-mail attachment.
"""
from __future__ import annotations

import base64
import html
import io
import math
import re
import struct
import time
from pathlib import Path

import pandas as pd

from ..files import atomic_write_text
from ..errors import LosspathError
from .metadata import METADATA_FILE, read_study_metadata
from .tables import REPLICATE_COLUMNS, TableView, table_view

REPORT_FILE = "report.html"
IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
INLINE_PREFERENCE = (".png", ".svg", ".jpg", ".jpeg")  # PNG first: small for dense line plots
MAX_INLINE_BYTES = 1_500_000  # bigger raster figures are shrunk for the page (the file itself is linked)
MAX_INLINE_WIDTH = 1600

CSS = """
:root { --fg: #1a1a1a; --muted: #5a5a5a; --rule: #d9d9d9; --accent: #0072B2; --band: #f4f6f8; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; font: 15px/1.5 system-ui, -apple-system, "Segoe UI",
       Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 40px 0 12px; padding-bottom: 4px; border-bottom: 2px solid var(--accent); }
h3 { font-size: 1.05em; margin: 24px 0 6px; }
a { color: var(--accent); }
.subtitle, .note, figcaption .links, .files small { color: var(--muted); }
nav.toc { margin: 12px 0 0; font-size: 0.95em; }
nav.toc a { margin-right: 14px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
dl.meta dd ul { margin: 0; padding-left: 1.1em; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.88em; }
pre.text { background: var(--band); padding: 12px 14px; border-radius: 4px; white-space: pre-wrap;
           overflow-wrap: anywhere; }
figure.figure { margin: 22px 0 30px; }
figure.figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--rule); }
figcaption { margin-top: 6px; max-width: 900px; }
.scroll { overflow-x: auto; }
table.data { border-collapse: collapse; font-size: 0.82em; margin: 6px 0; }
table.data th, table.data td { padding: 3px 8px; border-bottom: 1px solid var(--rule); text-align: left;
                               vertical-align: bottom; }
table.data td { white-space: nowrap; }
table.data th { background: var(--band); position: sticky; top: 0; }
table.data td.num, table.data th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.data tbody tr:nth-child(even) { background: #fafbfc; }
table.data caption { caption-side: bottom; text-align: left; color: var(--muted); padding-top: 4px; }
ul.files { columns: 2; padding-left: 1.1em; }
@media print { h2 { break-after: avoid; } figure.figure, table.data { break-inside: avoid; } }
"""


# --------------------------------------------------------------------------------------------- discovery

def _natural_key(name: str):
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def _visible_files(out: Path) -> list[Path]:
    return sorted((p for p in out.iterdir() if p.is_file() and not p.name.startswith(".")),
                  key=lambda p: _natural_key(p.name))


def find_figures(out: Path, order: list[str] = ()) -> list[dict]:
    """Every figure of the directory, by file stem: the file to inline (PNG preferred, else SVG or JPEG) and
    all its formats. Stems named in `order` come first, in that order; the rest in natural order."""
    files = _visible_files(out)
    by_stem: dict[str, dict[str, Path]] = {}
    for p in files:
        if p.suffix.lower() in IMAGE_TYPES or p.suffix.lower() == ".pdf":
            by_stem.setdefault(p.stem, {})[p.suffix.lower()] = p
    figures = []
    for stem, formats in by_stem.items():
        inline = next((formats[s] for s in INLINE_PREFERENCE if s in formats), None)
        if inline is not None:
            figures.append(dict(stem=stem, inline=inline, formats=formats))
    rank = {stem: i for i, stem in enumerate(order)}
    figures.sort(key=lambda f: (rank.get(f["stem"], len(rank)), _natural_key(f["stem"])))
    return figures


def find_tables(out: Path) -> list[Path]:
    """Every CSV of the directory: summary.csv first, then the rest in natural order."""
    csvs = [p for p in _visible_files(out) if p.suffix.lower() == ".csv"]
    return sorted(csvs, key=lambda p: (p.stem != "summary", _natural_key(p.name)))


# ----------------------------------------------------------------------------------------------- pieces

def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def generic_caption(stem: str) -> str:
    """A caption from a file name, for figures the study did not caption: "fig3_max_increase" → "Max increase."."""
    m = re.match(r"^fig(?:ure)?[ _-]?\d+[a-z]?(?:[ _-]+(.*))?$", stem, flags=re.IGNORECASE)
    words = (m.group(1) or stem) if m else stem
    words = re.sub(r"[_\-]+", " ", words).strip() or stem
    return words[0].upper() + words[1:] + ("" if words.endswith(".") else ".")


def _image_size(data: bytes, suffix: str) -> tuple[int, int] | None:
    if suffix == ".png" and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


def _inline_image(path: Path) -> tuple[str, tuple[int, int] | None]:
    """A data URI for the figure file, and its pixel size when known. Big raster images are downscaled."""
    suffix = path.suffix.lower()
    data = path.read_bytes()
    if suffix != ".svg" and len(data) > MAX_INLINE_BYTES:
        try:
            from PIL import Image  # a matplotlib dependency

            with Image.open(io.BytesIO(data)) as im:
                im.thumbnail((MAX_INLINE_WIDTH, MAX_INLINE_WIDTH * 4))
                buf = io.BytesIO()
                im.save(buf, format="PNG", optimize=True)
            data, suffix = buf.getvalue(), ".png"
        except Exception:  # noqa: BLE001 - a figure we cannot shrink is still shown as it is
            pass
    uri = f"data:{IMAGE_TYPES[suffix]};base64,{base64.b64encode(data).decode('ascii')}"
    return uri, _image_size(data, suffix)


def _figure_html(number: int, fig: dict, caption: str) -> str:
    stem = fig["stem"]
    try:
        uri, size = _inline_image(fig["inline"])
    except OSError as e:
        uri, size = "", None
        caption += f" (The image file could not be read: {e.strerror or e}.)"
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    links = " · ".join(f'<a href="{_esc(p.name)}">{_esc(ext[1:].upper())}</a>'
                       for ext, p in sorted(fig["formats"].items(), key=lambda kv: kv[0] != ".pdf"))
    return (f'<figure class="figure" id="fig-{_esc(stem)}" data-stem="{_esc(stem)}">\n'
            f'<img class="figure-img" src="{uri}" alt="{_esc(caption)}"{dims}>\n'
            f'<figcaption><strong>Figure {number}.</strong> {_esc(caption)} '
            f'<span class="links">({links})</span></figcaption>\n</figure>')


def _cell(value) -> tuple[str, bool]:
    """Text of a table cell and whether it is a number (right-aligned)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–", False
    if isinstance(value, bool):
        return ("true" if value else "false"), False
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 100_000 else str(value), True
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value)), True
        return f"{value:.4g}", True
    text = str(value)
    if len(text) > 48 and ("/" in text or "\\" in text):  # a path (runs.csv): its last part says enough
        text = "…/" + re.split(r"[/\\]", text.rstrip("/\\"))[-1]
    return text, False


def _table_html(view: TableView) -> str:
    anchor = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(view.file).stem)
    head = f'<h3 id="table-{_esc(anchor)}"><a href="{_esc(view.file)}">{_esc(view.file)}</a></h3>'
    if view.error:
        return (f'{head}\n<p class="note">{_esc(view.file)} {_esc(view.error)}.</p>\n'
                f'<table class="data" data-file="{_esc(view.file)}"><caption>not readable</caption></table>')
    frame = view.frame
    shape = f"{view.rows:,} row{'s' * (view.rows != 1)} in the file"
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    th = "".join(f'<th{" class=num" if n else ""} scope="col">{_esc(c).replace("_", "_<wbr>")}</th>'
                 for c, n in zip(frame.columns, numeric))
    rows = []
    for record in frame.itertuples(index=False, name=None):
        cells = []
        for v in record:
            v = v.item() if hasattr(v, "item") else v
            text, is_num = _cell(v)
            title = f' title="{_esc(v)}"' if text.startswith("…/") else ""
            cells.append(f'<td{" class=num" if is_num else ""}{title}>{_esc(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    link = f'<a href="{_esc(view.file)}">{_esc(view.file)}</a>'
    note = _esc(view.note + " " if view.note else "") + f"Full table: {link}."
    return (f'{head}\n<p class="note">{_esc(shape)}.</p>\n<div class="scroll">'
            f'<table class="data" data-file="{_esc(view.file)}" data-rows="{view.rows}">\n'
            f'<caption>{note}</caption>\n<thead><tr>{th}</tr></thead>\n<tbody>\n' + "\n".join(rows)
            + "\n</tbody></table></div>")


def _duration(seconds) -> str:
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m} min" if h else f"{m} min {sec} s"


def _value(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={_value(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v)
    return str(v)


def _settings_html(settings) -> str:
    if isinstance(settings, dict) and settings:
        items = "".join(f"<li><strong>{_esc(k)}</strong>: {_esc(_value(v))}</li>" for k, v in settings.items())
        return f"<ul>{items}</ul>"
    return _esc(_value(settings))


def _replicates(out: Path, tables: list[Path]) -> str | None:
    """The replicate (seed) values found in runs.csv or summary.csv, e.g. "replicate 0, 1, 2"."""
    for path in sorted(tables, key=lambda p: p.stem != "runs"):
        try:
            head = pd.read_csv(path, nrows=0).columns
            col = next((c for c in REPLICATE_COLUMNS if c in head), None)
            if col is None:
                continue
            values = sorted(pd.read_csv(path, usecols=[col])[col].dropna().unique().tolist())
        except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        shown = ", ".join(_cell(v)[0] for v in values[:20]) + (" …" if len(values) > 20 else "")
        return f"{col} {shown} (from {path.name})"
    return None


def _run_html(out: Path, meta: dict, tables: list[Path]) -> str:
    rows: list[tuple[str, str]] = []
    if not meta:
        rows.append(("metadata", f"unknown: no readable {METADATA_FILE} in this directory"))
    if meta.get("study"):
        rows.append(("study", _esc(meta["study"])))
    if meta.get("command"):
        rows.append(("command", f"<code>{_esc(meta['command'])}</code>"))
    if meta.get("options"):
        rows.append(("options", f"<code>{_esc(_value(meta['options']))}</code>"))
    if meta.get("settings"):
        rows.append(("settings", _settings_html(meta["settings"])))
    seeds = _replicates(out, tables)
    if seeds:
        rows.append(("replicates", _esc(seeds)))
    if meta.get("device"):
        rows.append(("device", _esc(meta["device"])))
    if meta.get("seconds") is not None:
        try:
            rows.append(("wall time", _esc(_duration(meta["seconds"]))))
        except (TypeError, ValueError):
            pass
    if meta.get("created"):
        rows.append(("finished", _esc(meta["created"])))
    versions = meta.get("versions")
    if isinstance(versions, dict) and versions:
        plat = versions.get("platform")
        text = " · ".join(f"{k} {v}" for k, v in versions.items() if k != "platform")
        rows.append(("versions", _esc(text) + (f"<br><small>{_esc(plat)}</small>" if plat else "")))
    git = meta.get("git")
    if isinstance(git, dict) and git.get("commit"):
        dirty = " with uncommitted changes" if git.get("dirty") else ""
        rows.append(("git commit", f"<code>{_esc(git['commit'])}</code>{_esc(dirty)}"
                     + (f" <small>({_esc(git.get('repo'))})</small>" if git.get("repo") else "")))
    elif meta:
        rows.append(("git commit", "unknown (not run inside a git repository)"))
    rows.append(("directory", f"<code>{_esc(out.resolve())}</code>"))
    body = "\n".join(f"<dt>{_esc(k)}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<dl class="meta">\n{body}\n</dl>'


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else (f"{n / 1024:.0f} KB" if n < 1024 ** 2 else f"{n / 1024 ** 2:.1f} MB")


# ---------------------------------------------------------------------------------------------- the page

def render_report(out_dir: str | Path, *, title: str | None = None) -> str:
    """The HTML text of the report on `out_dir` (see `write_report`)."""
    out = Path(out_dir)
    meta = read_study_metadata(out)
    captions = meta.get("captions") if isinstance(meta.get("captions"), dict) else {}
    figures = find_figures(out, order=list(captions))
    tables = find_tables(out)
    keys = meta.get("summary_keys") if isinstance(meta.get("summary_keys"), list) else None
    study = meta.get("study")
    default = f"{study}: losspath report" if study else f"losspath report: {out.resolve().name}"
    title = title or meta.get("title") or default

    texts = sorted((p for p in _visible_files(out) if p.suffix.lower() == ".txt"),
                   key=lambda p: (p.stem != "findings", _natural_key(p.name)))
    sections = [("run", "What was run", _run_html(out, meta, tables))]
    if texts:
        parts = []
        for p in texts:
            try:
                text = p.read_text(encoding="utf-8", errors="replace").rstrip()
            except OSError as e:
                text = f"({p.name} could not be read: {e.strerror or e})"
            alone = p.stem == "findings" and len(texts) == 1
            label = "" if alone else f'<h3><a href="{_esc(p.name)}">{_esc(p.name)}</a></h3>\n'
            parts.append(f'{label}<pre class="text" data-file="{_esc(p.name)}">{_esc(text)}</pre>')
        sections.append(("findings", "Findings", "\n".join(parts)))
    if figures:
        body = "\n".join(_figure_html(i + 1, f, str(captions.get(f["stem"]) or generic_caption(f["stem"])))
                         for i, f in enumerate(figures))
        sections.append(("figures", "Figures", body))
    if tables:
        body = "\n".join(_table_html(table_view(p, summary_keys=keys)) for p in tables)
        sections.append(("tables", "Tables", body))
    files = [p for p in _visible_files(out) if p.name != REPORT_FILE]
    items = "\n".join(f'<li><a href="{_esc(p.name)}">{_esc(p.name)}</a> <small>{_size(p.stat().st_size)}</small></li>'
                      for p in files)
    sections.append(("files", "Files", f'<ul class="files">\n{items}\n</ul>'))

    toc = " ".join(f'<a href="#{key}">{_esc(name)}</a>' for key, name, _ in sections)
    body = "\n".join(f'<section id="{key}">\n<h2>{_esc(name)}</h2>\n{content}\n</section>'
                     for key, name, content in sections)
    counts = (f"{len(figures)} figure{'s' * (len(figures) != 1)}, {len(tables)} table{'s' * (len(tables) != 1)} "
              f"from <code>{_esc(out.resolve().name)}/</code>")
    generated = time.strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="losspath report">
<title>{_esc(title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header>
<h1>{_esc(title)}</h1>
<p class="subtitle">{counts}; report generated {_esc(generated)} by losspath.</p>
<nav class="toc">{toc}</nav>
</header>
{body}
</main>
</body>
</html>
"""


def write_report(out_dir: str | Path, *, title: str | None = None) -> Path:
    """Write `out_dir/report.html` (atomically) and return its path: a self-contained page — styles inline,
    figures as data URIs, relative links to the CSVs — with what was run (from study.json), the findings,
    every figure with its caption and one table per CSV. Works on any directory holding a CSV or a figure."""
    out = Path(out_dir)
    try:
        if not out.exists():
            raise LosspathError(f"Directory {str(out)!r} does not exist.")
        if not out.is_dir():
            raise LosspathError(f"{str(out)!r} is not a directory; give a study's output directory.")
        has_content = bool(find_tables(out) or find_figures(out))
    except (OSError, ValueError) as e:  # unreadable, name too long, NUL in the name
        why = getattr(e, "strerror", None) or e
        raise LosspathError(f"Directory {str(out)!r} could not be read ({why}).") from None
    if not has_content:
        raise LosspathError(f"{str(out)!r} holds no CSV table and no figure, so it is not a study output directory.")
    page = render_report(out, title=title)
    path = out / REPORT_FILE
    try:
        atomic_write_text(path, page)
    except OSError as e:
        raise LosspathError(f"Could not write {path} ({e.strerror or e}).") from None
    return path
