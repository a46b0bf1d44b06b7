"""Worked example for docs/your_own_model.md: forgetting along the line from a pretrained to a fine-tuned
character-level language model (a HuggingFace GPT-2 built from a config; nothing is downloaded).

    pip install -e ".[hf]" && python docs/your_own_model.py        # about two minutes on one core
    python docs/your_own_model.py --states /tmp/lm                   # also save both states there

The same line from the command line, with this file's factories for the network and the data:

    losspath line /tmp/lm/pretrained.safetensors /tmp/lm/fine_tuned.safetensors --loss lm_cross_entropy \
        --model docs/your_own_model.py:make_model --data docs/your_own_model.py:prose_test --points 15

Pretraining text: the docstrings of standard-library modules (English prose). Fine-tuning text: the source code
of other standard-library modules. Both ship with Python. The line θ(α) = (1 − α)·θ_pretrained +
α·θ_fine-tuned is scored by per-token cross-entropy (loss="lm_cross_entropy") on held-out prose and held-out
code; the figure is written to docs/your_own_model.png.
"""
from __future__ import annotations

import copy
import importlib
import inspect
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from losspath import evaluate_line  # noqa: E402

PROSE_MODULES = ["collections", "functools", "itertools", "json", "os", "pathlib", "re", "string", "textwrap",
                 "typing", "argparse", "logging", "subprocess", "unittest", "datetime", "decimal", "fractions",
                 "inspect", "shutil", "tempfile", "threading", "asyncio", "contextlib", "dataclasses", "enum"]
CODE_MODULES = ["textwrap", "string", "fractions", "colorsys", "bisect", "heapq", "shlex", "difflib", "calendar",
                "fnmatch", "glob", "statistics", "random", "base64", "csv", "pprint", "reprlib"]
CONTEXT, BATCH, EVAL_SEQUENCES = 64, 32, 96
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))  # characters outside it are read as spaces


def docstrings(names: list[str]) -> str:
    """Module and public-member docstrings of the named modules, in a fixed order."""
    parts = []
    for name in names:
        module = importlib.import_module(name)
        parts.append(inspect.getdoc(module) or "")
        for attr in sorted(dir(module)):
            doc = inspect.getdoc(getattr(module, attr, None)) if not attr.startswith("_") else None
            if doc and getattr(getattr(module, attr), "__module__", None) == name:
                parts.append(doc)
    return "\n\n".join(parts)


def source(names: list[str]) -> str:
    return "\n\n".join(inspect.getsource(importlib.import_module(name)) for name in names)


def encode(text: str) -> torch.Tensor:
    index = {c: i for i, c in enumerate(ALPHABET)}
    return torch.tensor([index.get(c, index[" "]) for c in text], dtype=torch.long)


def split(tokens: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """(training tokens, held-out evaluation set): the last EVAL_SEQUENCES windows are held out."""
    held = EVAL_SEQUENCES * CONTEXT
    windows = tokens[-held:].view(EVAL_SEQUENCES, CONTEXT)
    return tokens[:-held], {"input_ids": windows, "labels": windows}


def train(model, tokens: torch.Tensor, steps: int, lr: float, seed: int) -> dict:
    """Adam on random windows of `tokens` with the model's own causal-LM loss; returns the final state."""
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(tokens) - CONTEXT, (BATCH,), generator=g)
        ids = torch.stack([tokens[s : s + CONTEXT] for s in starts.tolist()])
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return copy.deepcopy(model.state_dict())


def make_model():
    """The network: a 2-layer, width-64 GPT-2 over the 96 characters of ALPHABET (about 110k parameters)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=len(ALPHABET), n_positions=CONTEXT, n_embd=64, n_layer=2, n_head=4,
                        bos_token_id=0, eos_token_id=0, attn_implementation="eager")
    return GPT2LMHeadModel(config)


def prose_test() -> dict:
    """The held-out prose windows (a data factory for `losspath line --data`)."""
    return split(encode(docstrings(PROSE_MODULES)))[1]


def code_test() -> dict:
    """The held-out code windows."""
    return split(encode(source(CODE_MODULES)))[1]


def main(out: Path = Path(__file__).with_name("your_own_model.png"), states: Path | None = None):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    prose_train, prose_test = split(encode(docstrings(PROSE_MODULES)))
    code_train, code_test = split(encode(source(CODE_MODULES)))
    print(f"prose: {len(prose_train):,} training characters; code: {len(code_train):,}")

    model = make_model()
    pretrained = train(model, prose_train, steps=800, lr=3e-3, seed=1)
    fine_tuned = train(model, code_train, steps=400, lr=2e-3, seed=2)
    t1 = time.perf_counter()
    if states is not None:
        from losspath.checkpoints import save_state

        states.mkdir(parents=True, exist_ok=True)
        for name, state in (("pretrained", pretrained), ("fine_tuned", fine_tuned)):
            save_state(states / f"{name}.safetensors", {k: v.contiguous() for k, v in state.items()
                                                        if k != "lm_head.weight"})  # tied to the embedding

    alphas = np.linspace(-0.2, 1.2, 29)
    lines = {name: evaluate_line(make_model(), pretrained, fine_tuned, data, alphas=alphas,
                                 loss="lm_cross_entropy", progress=False)
             for name, data in (("prose (docstrings)", prose_test), ("code (module source)", code_test))}
    t2 = time.perf_counter()
    for name, line in lines.items():
        at = {a: line.loss[np.argmin(np.abs(alphas - a))] for a in (0.0, 0.5, 1.0)}
        print(f"{name:22s} loss at α=0 {at[0.0]:.3f}, 0.5 {at[0.5]:.3f}, 1 {at[1.0]:.3f}; "
              f"max increase {line.summary()['loss_max_increase']:.3f}; path {line.info['path']}")
    print(f"training {t1 - t0:.0f} s, two lines of {len(alphas)} points {t2 - t1:.1f} s")
    plot(lines, out)


def plot(lines: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 2.8), layout="constrained")
    for (name, line), colour in zip(lines.items(), ("#0072B2", "#D55E00")):
        ax.plot(line.alphas, line.loss, color=colour, lw=1.4, label=name)
    for a in (0.0, 1.0):
        ax.axvline(a, color="0.8", lw=0.8, zorder=0)
    ax.set_xlabel("α  (0: pretrained on prose, 1: fine-tuned on code)")
    ax.set_ylabel("held-out loss (nats per character)")
    ax.legend(frameon=False)
    fig.savefig(out, dpi=150)
    print(f"figure: {out}")


if __name__ == "__main__":
    main(states=Path(sys.argv[sys.argv.index("--states") + 1]) if "--states" in sys.argv else None)
