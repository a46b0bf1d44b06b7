"""One folder per paper, each a short recipe of library parts (hparams → train → lines → metrics → figures).

A study module has a typer-annotated `cli` (its docstring's first paragraph is the study's summary) and
`app = study_app(cli, ...)` from `harness`; `losspath reproduce NAME` imports the module only when it runs.
"""
import ast
import importlib.util

# command name → module under losspath.studies
STUDIES = {
    "frankle2020": "frankle2020",
    "instability": "instability",
    "rebasin": "rebasin",
    "mli-plateau": "mli.plateau",
    "mli-toy": "mli.toy",
    "basins": "basins",
    "goodfellow2015": "goodfellow2015",
}


def summary(name: str) -> str:
    """The first paragraph of study `name`'s `cli` docstring, read from its source without importing it (so
    `losspath --help` stays quick)."""
    spec = importlib.util.find_spec(f"{__name__}.{STUDIES[name]}")
    tree = ast.parse(open(spec.origin, encoding="utf-8").read())
    cli = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "cli")
    return " ".join(ast.get_docstring(cli).split("\n\n")[0].split())
