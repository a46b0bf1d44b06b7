"""Hyperparameters of a training run, hashed into the run's directory name (OpenLTH's idea).

Only fields that differ from the dataclass defaults enter the hash, so adding a new field with a default
never renames existing runs. `paper_defaults` holds OpenLTH's settings for the paper networks.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields

from .errors import LosspathError


@dataclass(frozen=True)
class Hparams:
    """Everything that changes the weights a run produces. A field's `help` is its text in `losspath train`
    (cli_options)."""

    dataset: str = field(default="mnist1d", metadata={"help": "Data set: mnist1d, mnist5k, digits, mnist, cifar10, "
                                                              "imagenet."})
    model: str = field(default="lenet_300_100", metadata={"help": "Network, e.g. lenet_300_100, mlp_512_512, "
                                                                  "cifar_resnet_20."})
    # model construction (losspath.models.build_model)
    init_scale: float = field(default=1.0, metadata={"help": "Multiplier on the Kaiming-normal init."})
    # "uniform": Linear/Conv biases as OpenLTH leaves them (torch's default)
    bias_init: str = field(default="zero", metadata={"help": "zero, or uniform: U(±1/sqrt(fan_in)) as OpenLTH "
                                                             "leaves Linear/Conv biases."})
    activation: str = field(default="relu", metadata={"help": "relu or poly."})
    bias: bool = True
    poly_degree: int = 2
    poly_interval: float = 4.0
    seed: int = field(default=0, metadata={"help": "Initialization seed."})
    # data order and augmentation; None: same as `seed`
    data_seed: int | None = field(default=None, metadata={"help": "Data-order seed (default: --seed)."})
    # optimization
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = field(default=128, metadata={"help": "0 means full-batch gradient descent."})
    steps: str = field(default="40ep", metadata={"help": "Training length: '40ep', '1000it', '2ep50it' (a bare "
                                                         "number counts iterations: '100' is '100it')."})
    # lr × gamma at each
    milestones: str = field(default="", metadata={"help": "e.g. '80ep,120ep'."})
    gamma: float = 0.1
    # linear warmup from 0
    warmup: str = field(default="", metadata={"help": "Linear warmup length, e.g. '5ep'."})
    augment: bool = True  # use the data set's augmentation, if it has one
    # see losspath.steps.checkpoint_schedule
    checkpoints: str = field(default="frankle", metadata={"help": "frankle, epochs, every:STEP, or a list "
                                                                  "'0,100it,last'."})
    # > 0: stop at the first epoch end where the exact training error is at most this; `steps` is then the cap
    stop_at_train_error: float = field(default=0.0, metadata={"help": "Stop at the first epoch end where the "
                                                                      "training error is at most this (--steps "
                                                                      "is then the cap)."})
    # start from another run's checkpoint instead of a fresh init (Liao & Poggio's branches)
    init_from: str = ""  # "train_<hash>@STEP": a run in the same store, step as for Run.resolve_step
    perturb: float = 0.0  # then add N(0, (perturb · std of each parameter tensor)²) (losspath.perturb)
    perturb_seed: int = 0

    def __post_init__(self):
        """Spellings that mean the same run hash the same: no surrounding space, the data set name and the
        schedule in lower case (as they are read), steps in lower case with a bare count "100" as "100it"."""
        for name in ("dataset", "model", "activation", "bias_init", "checkpoints"):
            value = getattr(self, name)
            if isinstance(value, str):  # data set names and schedules are read case-blind; model names are not
                value = value.strip()
                object.__setattr__(self, name, value.lower() if name in ("dataset", "checkpoints") else value)

        def step(text: str) -> str:
            text = text.strip().lower()
            return text + "it" if text.isascii() and text.isdigit() else text

        if isinstance(self.steps, str):
            object.__setattr__(self, "steps", step(self.steps))
        for name in ("milestones", "warmup"):  # lists of steps, as plan_run reads them
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, ",".join(step(p) for p in value.split(",") if p.strip()))

    def validate(self) -> "Hparams":
        """Raise a LosspathError naming the first value no training run can use; return self otherwise."""
        def bad(name, rule):
            raise LosspathError(f"--{name.replace('_', '-')} must be {rule}, not {getattr(self, name)!r}.")

        for name in ("seed", "data_seed", "perturb_seed"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and 0 <= v < 2**63):
                bad(name, "an integer in [0, 2^63)")
        positive = ("lr", "gamma", "init_scale", "poly_interval")
        for name in positive:
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                bad(name, "a positive finite number")
        for name in ("weight_decay", "perturb"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                bad(name, "a non-negative finite number")
        if not (0 <= self.momentum < 1):
            bad("momentum", "in [0, 1)")
        if not (0 <= self.stop_at_train_error < 1):
            bad("stop_at_train_error", "in [0, 1) (0: train for the full --steps)")
        if self.batch_size < 0:
            bad("batch_size", "a positive integer or 0 (full batch)")
        if self.poly_degree < 1:
            bad("poly_degree", "at least 1")
        from .models.init import BIAS_INITS
        from .steps import parse_step  # the syntax only: epochs become iterations once the data is known

        if self.bias_init not in BIAS_INITS:
            bad("bias_init", " or ".join(BIAS_INITS))

        parse_step(self.steps, 1)
        for text in (self.milestones, self.warmup):
            [parse_step(m, 1) for m in text.split(",") if m.strip()]
        return self

    @property
    def order_seed(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed

    def non_default(self) -> dict:
        """The fields that differ from the defaults, in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}

    def run_id(self) -> str:
        """A short stable hash of the non-default fields: the run directory's name."""
        blob = json.dumps(self.non_default(), sort_keys=True).encode()
        return "train_" + hashlib.sha256(blob).hexdigest()[:16]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Hparams":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise LosspathError(f"Unknown hyperparameters {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        return cls(**d)

    def replace(self, **changes) -> "Hparams":
        return dataclasses.replace(self, **changes)


# OpenLTH's default hyperparameters for the networks of Frankle 2020 (Sec. 2).
PAPER_DEFAULTS: dict[str, dict] = {
    "lenet_300_100": dict(lr=0.1, batch_size=128, steps="40ep"),
    "cifar_resnet_20": dict(lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128, steps="160ep",
                            milestones="80ep,120ep", gamma=0.1),
    "cifar_vgg_16": dict(lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128, steps="160ep",
                         milestones="80ep,120ep", gamma=0.1),
    "imagenet_resnet_50": dict(lr=0.4, momentum=0.9, weight_decay=1e-4, batch_size=1024, steps="90ep",
                               milestones="30ep,60ep,80ep", gamma=0.1, warmup="5ep"),
}


def paper_defaults(model: str) -> dict:
    """OpenLTH's training hyperparameters for `model`, or {} for networks the papers do not name."""
    return dict(PAPER_DEFAULTS.get(model, {}))
