"""Property-based: malformed arguments to any command end in one line `error: ...` on stderr, exit code 2, no
traceback, and nothing written. Every generated argument list is invalid, and invalid before any training."""
import contextlib
import io
import math
import re
import tempfile
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from losspath.cli import app, main
from losspath.data.registry import dataset_names
from losspath.models.registry import FAMILIES
from losspath.studies import frankle2020
from losspath.studies.frankle2020 import SETTINGS

STEP = re.compile(r"^(?:([0-9]+)ep)?(?:([0-9]+)it)?$")


def known_options(command) -> set[str]:
    """Every option name of a typer command, read from the CLI itself."""
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}


TRAIN_OPTIONS = known_options(typer.main.get_command(app).commands["train"])
FRANKLE_OPTIONS = known_options(typer.main.get_command(frankle2020.app))  # the study parses its own options
STUDIES = set(typer.main.get_command(app).commands["reproduce"].commands)
FAST = ["--data", "digits", "--model", "mlp_8"]  # what a valid rest of a train command uses (loads in ~0.1 s)

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
# text with a letter that no number literal (nor inf, nan, 0x…) holds, so no int or float parser accepts it
junk = st.builds(lambda a, c, b: a + c + b, text, st.characters(whitelist_categories=("Lu", "Ll", "Lo")).filter(
    lambda c: c not in "eEinfatyINFATYxXoObBjJ"), text)


def step_value(s: str) -> int | None:
    """The iterations a step string names, read as steps.parse_step documents ("160ep", "1000it", "2ep50it",
    a bare integer; ASCII digits; case and surrounding space ignored), or None when it names none."""
    t = s.strip().lower()
    if re.fullmatch(r"[0-9]+", t):
        return int(t)
    m = STEP.match(t)
    if not t or m is None:
        return None
    return sum(int(g) for g in m.groups() if g)


def bad_step(s: str) -> bool:
    """Not a positive training length: wrong form, or zero iterations."""
    v = step_value(s)
    return v is None or v == 0


def bad_warmup(s: str) -> bool:
    """Not a warmup length (blank means none)."""
    return s.strip() != "" and step_value(s) is None


def not_a_model(s: str) -> bool:
    return not any(re.fullmatch(f.regex, s) for f in FAMILIES)


def numbers_outside(flag: str, *values) -> st.SearchStrategy:
    """`train` with `flag` set to a number outside its range (the rest valid and fast)."""
    return st.one_of(*values).map(lambda v: ["train", *FAST, "--steps", "1it", f"{flag}={v!r}"])


def option(known: set[str]):
    return st.from_regex(r"\A--[a-z][a-z\-]{0,15}\Z").filter(lambda o: o not in known)


train = st.one_of(
    text.filter(bad_step).map(lambda s: ["train", *FAST, f"--steps={s}"]),
    text.filter(not_a_model).map(lambda s: ["train", "--data", "digits", f"--model={s}", "--steps", "1it"]),
    text.filter(lambda s: s.strip().lower() not in dataset_names()).map(lambda s: ["train", f"--data={s}"]),
    junk.map(lambda s: ["train", *FAST, "--steps", "1it", f"--seed={s}"]),
    junk.map(lambda s: ["train", *FAST, "--steps", "1it", f"--lr={s}"]),
    junk.map(lambda s: ["train", *FAST, "--steps", "1it", f"--batch-size={s}"]),
    st.floats(max_value=0, allow_nan=False, allow_infinity=False).map(
        lambda v: ["train", *FAST, "--steps", "1it", f"--init-scale={v}"]),
    numbers_outside("--seed", st.integers(min_value=2**63), st.integers(max_value=-1)),
    numbers_outside("--data-seed", st.integers(min_value=2**63), st.integers(max_value=-1)),
    numbers_outside("--lr", st.floats(max_value=0), st.just(math.inf), st.just(math.nan)),
    numbers_outside("--gamma", st.floats(max_value=0), st.just(math.nan)),
    numbers_outside("--weight-decay", st.floats(max_value=0, exclude_max=True), st.just(math.nan)),
    numbers_outside("--momentum", st.floats(max_value=0, exclude_max=True), st.floats(min_value=1), st.just(math.nan)),
    numbers_outside("--batch-size", st.integers(max_value=-1)),
    text.filter(lambda s: s not in ("relu", "poly")).map(
        lambda s: ["train", *FAST, "--steps", "1it", f"--activation={s}"]),
    text.filter(bad_warmup).map(lambda s: ["train", *FAST, "--steps", "4it", f"--warmup={s}"]),
    option(TRAIN_OPTIONS).map(lambda o: ["train", *FAST, "--steps", "1it", o, "1"]),
)
frankle = ["reproduce", "frankle2020"]
reproduce = st.one_of(
    text.filter(lambda s: s not in SETTINGS).map(lambda s: [*frankle, f"--setting={s}"]),
    text.filter(lambda s: s not in ("train", "test")).map(lambda s: [*frankle, f"--split={s}"]),
    text.filter(lambda s: s not in ("interpolate", "recompute", "start", "end")).map(
        lambda s: [*frankle, f"--batchnorm={s}"]),
    st.integers(max_value=1).map(lambda v: [*frankle, f"--points={v}"]),
    st.integers(max_value=0).map(lambda v: [*frankle, f"--replicates={v}"]),
    junk.map(lambda s: [*frankle, f"--points={s}"]),
    # (an empty --steps means "no override" there)
    text.filter(lambda s: s.strip() and bad_step(s)).map(lambda s: [*frankle, "--setting", "digits-mlp", "-r", "1",
                                                            f"--steps={s}"]),
    option(FRANKLE_OPTIONS).map(lambda o: [*frankle, o, "1"]),
    st.from_regex(r"\A[a-z0-9\-]{1,12}\Z").filter(lambda s: s not in STUDIES).map(lambda s: ["reproduce", s]),
)
# report: a missing directory, an empty one, a file, a directory holding only notes (filled in per example)
report = st.tuples(st.sampled_from(["missing", "empty", "file", "notes"]),
                   st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                           min_size=1, max_size=40).filter(lambda s: s not in (".", ".."))
                   ).map(lambda t: ["report", t])


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def check(argv: list[str], base: Path) -> None:
    tree_before = sorted(base.rglob("*"))
    code, out, err = run(argv)
    lines = err.splitlines()
    assert code == 2, (argv, code, err[-2000:])
    assert "Traceback" not in err, (argv, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
    assert out == "", (argv, out)
    assert sorted(base.rglob("*")) == tree_before, (argv, "wrote files")


def with_dirs(argv: list[str], base: Path) -> list[str]:
    """The command with its output locations pointed into `base` (so that anything written would show)."""
    if argv[0] == "train":
        return argv + ["--root", str(base / "runs"), "--data-root", str(base / "data"), "-q"]
    if argv[:2] == frankle:
        return argv + ["--root", str(base / "runs"), "--data-root", str(base / "data"), "--out", str(base / "out"),
                       "-q"]
    return argv


@settings(max_examples=90, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.one_of(train, reproduce))
def test_malformed_train_and_reproduce_arguments(argv):
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "data").mkdir()  # exists, empty: digits needs nothing, and nothing may be cached into it
        check(with_dirs(argv, base), base)


@settings(max_examples=25, deadline=None)
@given(report)
def test_report_on_what_is_not_a_study_directory(args):
    _, (kind, name) = args
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        target = base / name
        if kind == "empty":
            target.mkdir()
        elif kind == "file":
            target.write_text("1,2\n")
        elif kind == "notes":
            target.mkdir()
            (target / "notes.txt").write_text("x")
        check(["report", str(target)], base)


# Found by this fuzzer and fixed in b3b42dd (they crashed with a traceback or trained on nonsense); kept as
# fixed cases so that they stay fixed whatever the generator draws.
FOUND = [
    ["--seed", "99999999999999999999999"],
    ["--data-seed", "-7"],
    ["--lr", "-1"],
    ["--weight-decay", "-1"],
    ["--lr", "nan"],
    ["--batch-size", "-3"],
    ["--steps", "\u00b2"],  # '²': a digit to str.isdigit, but no integer
]


@pytest.mark.parametrize("bad", FOUND, ids=lambda b: " ".join(b))
def test_values_the_fuzzer_found(bad, tmp_path):
    (tmp_path / "data").mkdir()
    steps = [] if "--steps" in bad else ["--steps", "1it"]
    check(with_dirs(["train", *FAST, *steps, *bad], tmp_path), tmp_path)
