"""The basins study's knobs (`Config`) and the Hparams of every run its parts train (Liao & Poggio 2017)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...errors import LosspathError
from ...hparams import Hparams

PARTS = (1, 2, 3, 4, 5, 6)
NEEDS = {1: (1,), 2: (2,), 3: (2, 3), 4: (4,), 5: (4, 5), 6: (2, 4, 5, 6)}  # runs each part reads
DEFAULT_MODELS = {"digits": "convnet6", "cifar10": "convnet6", "mnist": "convnet6", "mnist1d": "conv1d"}
DEFAULT_DATA = ("digits", "mnist1d")
BARRIER_TOL = 0.01  # a line "has a barrier" when its training-error barrier exceeds this (1 % of the examples)


@dataclass(frozen=True)
class Config:
    """The study's knobs; the defaults are the reduced scale that runs here in minutes (see docs/basins.md
    for the paper's scale). Epoch counts are per run. A field's `help` is its text in `losspath reproduce
    basins` (cli_options)."""

    data: str = "digits"
    model: str = field(default="", metadata={"help": "Network (default: convnet6 for images, conv1d for mnist1d)."})
    seed: int = field(default=0, metadata={"help": "Initialization seed; data-order and noise seeds derive from it."})
    lr: float = field(default=0.01, metadata={"help": "SGD learning rate, parts 1-2 (paper: 0.01)."})
    batch_size: int = field(default=100, metadata={"help": "SGD batch size (paper: 100)."})
    # part 1
    poly_degree: int = field(default=2, metadata={"help": "Part 1: polynomial degree."})
    poly_interval: float = field(default=4.0, metadata={"help": "Part 1: fit the polynomial to ReLU on [-a, a]."})
    poly_epochs: int = field(default=20, metadata={"help": "Part 1: SGD epochs."})
    # part 2
    stages: int = field(default=4, metadata={"help": "Part 2: stages S (paper: 12)."})
    runs: int = field(default=4, metadata={"help": "Part 2: parallel runs K per stage (paper: 8)."})
    epochs: int = field(default=5, metadata={"help": "Part 2: epochs per run (paper: 10)."})
    perturb: float = field(default=0.01, metadata={"help": "Part 2: noise std c × layer std (paper: 0.01)."})
    # part 3
    layer: str = field(default="2", metadata={"help": "MDS weights: layer index (ℓ-th weight tensor), a parameter "
                                                      "name, or 'all'."})
    late_from: int = field(default=0, metadata={"help": "Part 3: first stage of the separate 'later stages' "
                                                        "embedding (default round(5/12·S), the paper's 5 of 12)."})
    # part 4
    # the caption gives no GD rate; 0.1 trains digits' convnet6 stably here, 0.5 does not
    gd_lr: float = field(default=0.1, metadata={"help": "Parts 4-5: GD learning rate."})
    gd_epochs: int = field(default=100, metadata={"help": "Parts 4-5: full-batch GD epochs of the main trajectory."})
    # the paper's 0, 10, 50, 200 scaled by 1/4
    branch_at: tuple[int, ...] = field(default=(0, 3, 13, 50),
                                       metadata={"help": "Part 4: branch epochs (paper: 0,10,50,200)."})
    branch_perturb: float = field(default=0.25, metadata={"help": "Part 4 (paper: 0.25)."})
    # part 5
    flat_epochs: int = field(default=50, metadata={"help": "Part 5: GD epochs after the perturbation (paper: 200)."})
    flat_perturb: float = field(default=0.1, metadata={"help": "Part 5 (paper: 0.1)."})
    repeats: int = field(default=4, metadata={"help": "Part 5: perturb-and-retrain repeats (paper: 4)."})
    # part 6: α evenly spaced in [0, 1]
    points: int = field(default=11, metadata={"help": "Part 6: α per line."})

    @property
    def model_name(self) -> str:
        return self.model or DEFAULT_MODELS.get(self.data, "")

    @property
    def unperturbed(self) -> int:
        """How many runs per stage start from P itself: K/2 (at least run 1, which carries the chain on)."""
        return max(1, self.runs // 2)

    @property
    def late_stage(self) -> int:
        return self.late_from or max(1, min(self.stages, round(5 * self.stages / 12)))

    def validate(self) -> "Config":
        from ...data.registry import dataset_names

        if self.data not in dataset_names():
            raise LosspathError(f"Unknown data set {self.data!r}; known data sets: {', '.join(dataset_names())}.")
        if not self.model_name:
            raise LosspathError(f"No default network for data set {self.data!r}; pass --model "
                                f"(defaults exist for {', '.join(DEFAULT_MODELS)}).")
        positive = dict(stages=self.stages, runs=self.runs - 1, epochs=self.epochs, poly_epochs=self.poly_epochs,
                        gd_epochs=self.gd_epochs, flat_epochs=self.flat_epochs, repeats=self.repeats,
                        points=self.points - 1)
        bad = [k for k, v in positive.items() if v < 1]
        if bad:
            name = bad[0].replace("_", "-")
            least = 2 if bad[0] in ("runs", "points") else 1
            raise LosspathError(f"--{name} must be at least {least}.")
        for name in ("lr", "gd_lr", "poly_interval"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise LosspathError(f"--{name.replace('_', '-')} must be a positive finite number.")
        for name in ("perturb", "branch_perturb", "flat_perturb"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise LosspathError(f"--{name.replace('_', '-')} must be a finite number of at least 0.")
        if self.batch_size < 0:
            raise LosspathError("--batch-size must be at least 0 (0: full-batch gradient descent).")
        if not self.branch_at or any(b < 0 or b >= self.gd_epochs for b in self.branch_at):
            raise LosspathError(f"--branch-at epochs must lie in 0..{self.gd_epochs - 1} (before --gd-epochs).")
        if not 1 <= self.late_stage <= self.stages:
            raise LosspathError(f"--late-from must lie in 1..{self.stages}.")
        main, branches = gd_hparams(self)  # the library's own checks (seeds, finite rates, polynomial) too
        for hp in [main, *branches.values(), *polynomial_hparams(self).values(), *branch_hparams(self).values(),
                   *flat_hparams(self).values()]:
            hp.validate()
        return self


def base_hparams(cfg: Config) -> Hparams:
    """Plain SGD (no momentum, no augmentation: the runs differ only by start point and data order),
    weights saved every epoch."""
    return Hparams(dataset=cfg.data, model=cfg.model_name, seed=cfg.seed, lr=cfg.lr, batch_size=cfg.batch_size,
                   momentum=0.0, augment=False, checkpoints="epochs")


def polynomial_hparams(cfg: Config) -> dict[str, Hparams]:
    """Part 1: the ReLU net and its polynomial twin (same init seed and data order)."""
    relu = base_hparams(cfg).replace(steps=f"{cfg.poly_epochs}ep")
    return {"relu": relu, "poly": relu.replace(activation="poly", poly_degree=cfg.poly_degree,
                                               poly_interval=cfg.poly_interval)}


def _seed(cfg: Config, part: int, *index: int) -> int:
    """A distinct data-order / noise seed per part and run, and per --seed."""
    value = part
    for i in index:
        value = value * 1000 + i
    return cfg.seed * 10**9 + value


def branch_hparams(cfg: Config) -> dict[tuple[int, int], Hparams]:
    """Part 2: the hyperparameters of run k (1..K) of stage s (1..S), keyed (s, k).

    Stage 1 starts from the seeded initialization (P₀); stage s > 1 from P = the last checkpoint of run 1 of
    stage s − 1 (`init_from`). Runs k > K/2 add the layer-wise perturbation c·std (`perturb`, own noise seed).
    Every run has its own data order (`data_seed`).
    """
    base = base_hparams(cfg).replace(steps=f"{cfg.epochs}ep")
    out: dict[tuple[int, int], Hparams] = {}
    for s in range(1, cfg.stages + 1):
        parent = f"{out[s - 1, 1].run_id()}@last" if s > 1 else ""
        for k in range(1, cfg.runs + 1):
            perturbed = k > cfg.unperturbed and cfg.perturb > 0
            out[s, k] = base.replace(init_from=parent, data_seed=_seed(cfg, 2, s, k),
                                     perturb=cfg.perturb if perturbed else 0.0,
                                     perturb_seed=_seed(cfg, 2, s, k) if perturbed else 0)
    return out


def gd_hparams(cfg: Config) -> tuple[Hparams, dict[int, Hparams]]:
    """Part 4: the full-batch GD main trajectory and, per branch epoch b, the branch that starts from the
    main trajectory's epoch-b weights perturbed by `branch_perturb`·std and runs to the same last epoch."""
    main = base_hparams(cfg).replace(lr=cfg.gd_lr, batch_size=0, steps=f"{cfg.gd_epochs}ep")
    branches = {b: main.replace(init_from=f"{main.run_id()}@{b}ep", perturb=cfg.branch_perturb,
                                perturb_seed=_seed(cfg, 4, b), steps=f"{cfg.gd_epochs - b}ep")
                for b in sorted(set(cfg.branch_at))}
    return main, branches


def flat_hparams(cfg: Config) -> dict[int, Hparams]:
    """Part 5: repeat r (1..R) perturbs M_final, the last model of the GD main trajectory, by
    `flat_perturb`·std and retrains it with full-batch GD."""
    main, _ = gd_hparams(cfg)
    return {r: main.replace(init_from=f"{main.run_id()}@last", perturb=cfg.flat_perturb,
                            perturb_seed=_seed(cfg, 5, r), steps=f"{cfg.flat_epochs}ep")
            for r in range(1, cfg.repeats + 1)}


def run_hparams(cfg: Config, parts: list[int]) -> list[Hparams]:
    """Every run the chosen parts read, each after the run it starts from."""
    needed = {p for part in parts for p in NEEDS[part]}
    hps = list(polynomial_hparams(cfg).values()) if 1 in needed else []
    hps += list(branch_hparams(cfg).values()) if 2 in needed else []  # stage by stage
    if 4 in needed:
        main, branches = gd_hparams(cfg)
        hps += [main, *branches.values()]
    hps += list(flat_hparams(cfg).values()) if 5 in needed else []
    return hps


def parse_parts(parts) -> list[int]:
    chosen = sorted({int(p) for p in parts}) if parts else list(PARTS)
    bad = [p for p in chosen if p not in PARTS]
    if bad:
        raise LosspathError(f"Unknown part {bad[0]}; the parts are 1 to 6.")
    return chosen


def parse_epochs(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise LosspathError(f"--branch-at must be comma-separated epochs like 0,10,50,200, not {text!r}.") from None
    if not values:
        raise LosspathError("--branch-at needs at least one epoch.")
    return values
