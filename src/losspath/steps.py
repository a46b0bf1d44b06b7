"""Training lengths as OpenLTH writes them ("160ep", "1000it", "2ep50it") and checkpoint schedules.

An epoch has ceil(N / batch_size) iterations; a step string is resolved to an iteration count once that
number is known. Schedules name the iterations at which a run saves its weights.
"""
from __future__ import annotations

import math
import re

from .errors import LosspathError
from .limits import MAX_CHECKPOINTS

_STEP = re.compile(r"^(?:([0-9]+)ep)?(?:([0-9]+)it)?$")


def iterations_per_epoch(num_examples: int, batch_size: int) -> int:
    """ceil(N / batch); a batch size of 0 means full-batch gradient descent (one iteration per epoch)."""
    if batch_size <= 0 or batch_size >= num_examples:
        return 1
    return math.ceil(num_examples / batch_size)


def parse_step(text: str, per_epoch: int) -> int:
    """The iteration that `text` names: "160ep" → 160·per_epoch, "1000it" → 1000, "2ep50it" → 2·per_epoch + 50.

    A bare integer is read as iterations.
    """
    s = str(text).strip().lower()
    if re.fullmatch(r"[0-9]+", s):
        return int(s)
    m = _STEP.match(s)
    if not s or m is None or (m.group(1) is None and m.group(2) is None):
        raise LosspathError(f"Step {text!r} is not of the form '160ep', '1000it' or '2ep50it'.")
    return int(m.group(1) or 0) * per_epoch + int(m.group(2) or 0)


def format_step(iteration: int, per_epoch: int) -> str:
    """The inverse of `parse_step` in canonical form: "2ep50it", "3ep", "0it"."""
    ep, it = divmod(iteration, per_epoch)
    if ep and it:
        return f"{ep}ep{it}it"
    return f"{ep}ep" if ep else f"{it}it"


def frankle_schedule(last: int) -> list[int]:
    """Frankle 2020, Sec. 2: t ∈ {0} ∪ {2^k | k ≤ 10} ∪ {1000k | k > 1}, cut at `last`, plus `last` itself."""
    ts = {0} | {2**k for k in range(11)} | {1000 * k for k in range(2, last // 1000 + 1)}
    return sorted({t for t in ts if t <= last} | {last})


def checkpoint_schedule(expr: str, last: int, per_epoch: int) -> list[int]:
    """The sorted iterations at which to save weights; always includes 0 and `last`.

    `expr` is one of
      - "frankle": Frankle 2020's schedule (`frankle_schedule`);
      - "epochs": every epoch boundary;
      - "every:STEP": every STEP (e.g. "every:100it", "every:2ep");
      - a comma-separated list of steps, e.g. "0,100it,2ep,last".
    """
    e = str(expr).strip().lower()
    if e == "frankle":
        _check_count(expr, last // 1000 + 13)
        return frankle_schedule(last)
    if e in ("epochs", "every-epoch"):
        e = "every:1ep"
    if e.startswith("every:"):
        period = parse_step(e[len("every:"):], per_epoch)
        if period <= 0:
            raise LosspathError(f"Checkpoint period in {expr!r} must be positive.")
        _check_count(expr, last // period + 2)
        return sorted(set(range(0, last + 1, period)) | {last})
    steps = {0, last}
    for part in filter(None, (p.strip() for p in e.split(","))):
        t = last if part == "last" else parse_step(part, per_epoch)
        if t > last:
            raise LosspathError(f"Checkpoint step {part!r} ({t} iterations) lies after the last step ({last}).")
        steps.add(t)
    if not e.replace(",", "").strip():
        raise LosspathError(f"Checkpoint schedule {expr!r} is empty; use 'frankle', 'epochs', 'every:STEP' or a list.")
    return sorted(steps)


def _check_count(expr: str, count: int) -> None:
    """Refuse a schedule of more than MAX_CHECKPOINTS states before building its list."""
    if count > MAX_CHECKPOINTS:
        raise LosspathError(f"Checkpoint schedule {expr!r} saves about {count:,} states; at most "
                            f"{MAX_CHECKPOINTS:,} are allowed (use a longer period or fewer steps).")
