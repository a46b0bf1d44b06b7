"""The HTML report: built from a real (tiny) Frankle study output, checked as HTML, then in a real browser."""
import base64
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from losspath.cli import main
from losspath.errors import LosspathError
from losspath.report import read_study_metadata, write_report, write_study_metadata
from browser import dump_dom, find_chromium, screenshot
from losspath.runtime import Runtime

CAPTIONS = {"fig1_from_init": "Loss and error along the line from initialization to the trained network.",
            "fig3_max_increase": "Maximum increase in loss and error along the line from iteration t, against t."}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    """A Frankle study output (2 replicates, so summary.csv gets averaged) with a study.json."""
    from losspath.studies.frankle2020 import run_study

    base = tmp_path_factory.mktemp("frankle")
    out = base / "out"
    result = run_study(["digits-mlp"], replicates=2, points=5, steps="5it", out=out, runtime=Runtime(root=base / "runs", progress=False))
    write_study_metadata(out, study="frankle2020", settings={"digits-mlp": {"model": "lenet_300_100", "steps": "5it"}},
                         options=dict(replicates=2, points=5), seconds=result["seconds"], device="cpu",
                         captions=CAPTIONS, argv=["reproduce", "frankle2020", "--replicates", "2"])
    return out


@pytest.fixture(scope="module")
def report(study_dir):
    path = write_report(study_dir)
    return path, path.read_text(encoding="utf-8")


class Collect(HTMLParser):
    """Elements with their attributes, text per element id, and a check that non-void tags nest properly."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements, self.stack, self.errors, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag, **attrs):
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def parse(text: str) -> Collect:
    p = Collect()
    p.feed(text)
    p.close()
    return p


def figure_stems(directory: Path) -> set[str]:
    return {p.stem for p in directory.iterdir() if p.suffix in (".png", ".svg")}


def csv_files(directory: Path) -> set[str]:
    return {p.name for p in directory.glob("*.csv")}


def test_report_holds_every_figure_table_and_link(study_dir, report):
    path, text = report
    assert path == study_dir / "report.html"
    assert text.startswith("<!DOCTYPE html>")
    page = parse(text)
    assert not page.errors and not page.stack, (page.errors, page.stack)
    stems = figure_stems(study_dir)
    assert stems == {"fig1_from_init", "fig2_from_t", "fig3_max_increase"}
    figures = {a["data-stem"]: a for a in page.find("figure") if "data-stem" in a}
    assert set(figures) == stems
    images = page.find("img")
    assert len(images) == len(stems)
    for img in images:
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    tables = {a["data-file"] for a in page.find("table") if "data-file" in a}
    assert tables == csv_files(study_dir) == {"curves.csv", "summary.csv", "runs.csv"}
    links = {a.get("href") for a in page.find("a")}
    assert csv_files(study_dir) <= links and "fig1_from_init.pdf" in links
    # captions: from study.json, else from the file name; findings and metadata shown
    words = " ".join(page.text)
    assert CAPTIONS["fig1_from_init"] in words and CAPTIONS["fig3_max_increase"] in words
    assert "From t." in words  # generic caption of fig2_from_t
    assert (study_dir / "findings.txt").read_text().splitlines()[0] in words
    assert "losspath reproduce frankle2020 --replicates 2" in words and "torch" in words


def test_report_is_self_contained(report):
    _, text = report
    assert not re.search(r"""(?:src|href|action|srcset)\s*=\s*["']?\s*(?:https?:)?//""", text, re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", text)
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert len(text) < 2_000_000


def test_summary_is_averaged_over_replicates(study_dir, report):
    _, text = report
    summary = pd.read_csv(study_dir / "summary.csv")
    table = re.search(r'<table class="data" data-file="summary.csv".*?</table>', text, re.DOTALL).group(0)
    rows = table.count("<tr>") - 1  # minus the header row
    assert rows == len(summary) // 2 == summary.groupby("start_step").ngroups
    assert "Mean over 2 replicates per setting × start_step × split" in table
    assert ">n</th>" in table and "replicate</th>" not in table


def test_study_json(study_dir):
    meta = read_study_metadata(study_dir)
    assert meta["study"] == "frankle2020" and meta["captions"] == CAPTIONS
    assert set(meta["versions"]) >= {"losspath", "torch", "python", "platform"}
    assert meta["device"].startswith("cpu") and meta["seconds"] > 0
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert meta["git"]["commit"] == head.stdout.strip()


def test_report_on_other_layouts(tmp_path):
    """A directory from another study: no study.json, SVG figures only, a long summary without replicates of a
    float key; and a directory holding nothing but one figure."""
    out = tmp_path / "mli"
    out.mkdir()
    rows = [dict(dataset="digits", depth=d, init_scale=s, bias=b, replicate=r, scheme="all",
                 error_plateau_end=0.1 * d + r / 100, monotone=bool(r))
            for d in range(1, 9) for s in (0.5, 1.0, 1.5) for b in (True, False) for r in range(3)]
    pd.DataFrame(rows).to_csv(out / "summary.csv", index=False)
    pd.DataFrame(dict(alpha=[0.0] * 500, loss=range(500))).to_csv(out / "curves.csv", index=False)
    (out / "plateau_vs_depth.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                                              '<rect width="10" height="10"/></svg>')
    text = write_report(out).read_text()
    page = parse(text)
    assert not page.errors
    assert [a["src"][:26] for a in page.find("img")] == ["data:image/svg+xml;base64,"]
    assert "Plateau vs depth." in text and "losspath report: mli" in text and "no readable study.json" in text
    summary = re.search(r'data-file="summary.csv".*?</table>', text, re.DOTALL).group(0)
    assert summary.count("<tr>") - 1 == 8 * 3 * 2  # depth × init_scale × bias, replicates averaged
    assert "monotone: fraction true" in summary
    curves = re.search(r'data-file="curves.csv".*?</table>', text, re.DOTALL).group(0)
    assert curves.count("<tr>") - 1 == 8 and "First 8 of 500 rows shown" in curves

    only = tmp_path / "only_figure"
    only.mkdir()
    (only / "f.svg").write_text((out / "plateau_vs_depth.svg").read_text())
    assert len(parse(write_report(only, title="T <&>").read_text()).find("img")) == 1
    assert "<title>T &lt;&amp;&gt;</title>" in (only / "report.html").read_text()


@pytest.mark.parametrize("make", ["missing", "empty", "file", "only_text"])
def test_not_a_study_directory_is_an_error_and_writes_nothing(tmp_path, make):
    target = tmp_path / "d"
    if make == "empty":
        target.mkdir()
    elif make == "file":
        target.write_text("x")
    elif make == "only_text":
        target.mkdir()
        (target / "notes.txt").write_text("x")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(LosspathError):
        write_report(target)
    assert sorted(tmp_path.rglob("*")) == before


def test_cli_report_prints_the_path(study_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", str(study_dir), "--title", "Frankle check"])
        raise SystemExit(0)
    out = capsys.readouterr()
    assert exc.value.code == 0 and out.out.strip() == str(study_dir / "report.html")
    assert "<title>Frankle check</title>" in (study_dir / "report.html").read_text()


# ----------------------------------------------------------------------------------------- real browser

@pytest.fixture(scope="module")
def browser():
    path = find_chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide chromium (Debian package `chromium`) for the browser test.")
        pytest.skip("no chromium, chromium-browser or google-chrome on PATH (apt-get install chromium)")
    return path


def test_report_in_a_real_browser(browser, study_dir, report, tmp_path):
    """Headless Chromium loads the report from file://: its DOM holds every figure and table, and a screenshot
    of the page is not blank."""
    path, _ = report
    dom = parse(dump_dom(path, timeout=90))
    images = [a for a in dom.find("img") if a.get("src", "").startswith("data:image/")]
    tables = [a for a in dom.find("table") if "data-file" in a]
    assert len(images) == len(figure_stems(study_dir)) == 3
    assert {a["data-file"] for a in tables} == csv_files(study_dir) and len(tables) == 3
    assert {a["data-stem"] for a in dom.find("figure") if "data-stem" in a} == figure_stems(study_dir)

    from PIL import Image, ImageStat

    png = screenshot(path, tmp_path / "report.png", width=1200, height=2000, timeout=90)
    with Image.open(png) as im:
        rgb = im.convert("RGB")
        assert rgb.size == (1200, 2000)
        colours = rgb.getcolors(maxcolors=1 << 20)
        stddev = ImageStat.Stat(rgb.convert("L")).stddev[0]
        not_white = sum(n for n, c in colours if min(c) < 235) / (rgb.size[0] * rgb.size[1])
    assert len(colours) > 50, "screenshot is (nearly) one colour"
    assert stddev > 10 and not_white > 0.01, (stddev, not_white)
