"""Worked examples for every curve metric, with expected values written out by hand."""
import math

import numpy as np
import pytest
import torch

from losspath.metrics import (
    barrier,
    distance,
    is_monotone,
    lucas_delta,
    max_increase,
    plateau_end,
    relative_distance,
    summarize,
)

A5 = np.linspace(0, 1, 5)  # 0, .25, .5, .75, 1

# monotone: 4 → 1.  Chord at t=.25,.5,.75 is 3.25, 2.5, 1.75; the curve lies below it.
MONOTONE = [4.0, 3.0, 2.0, 1.5, 1.0]
# bump: rises 2 → 3, falls to 1, rises again to 2.5, ends at 0.  Chord: 1.5, 1.0, 0.5.
BUMP = [2.0, 3.0, 1.0, 2.5, 0.0]
# plateau: stays near 2.3 until α = .6, then drops to .1 (Frankle 2020's CIFAR shape).
PLATEAU_ALPHAS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
PLATEAU = [2.3, 2.3, 2.29, 2.2, 0.5, 0.1]
FLAT = [1.0, 1.0, 1.0, 1.0]


def test_monotone_curve():
    assert max_increase(MONOTONE) == 0.0
    assert barrier(A5, MONOTONE) == 0.0
    assert lucas_delta(MONOTONE) == 0.0
    assert is_monotone(MONOTONE)
    assert plateau_end(A5, MONOTONE) == 0.25  # drop 3, first value ≤ 4 − 0.3 = 3.7 is 3.0 at α = .25
    assert plateau_end(A5, MONOTONE, fraction=0.5) == 0.5  # first value ≤ 2.5


def test_bump():
    assert max_increase(BUMP) == 1.0  # 3 − 2
    assert barrier(A5, BUMP) == 2.0  # 2.5 − 0.5 at α = .75
    assert lucas_delta(BUMP) == 1.5  # 1 → 2.5, larger than the first rise 2 → 3
    assert not is_monotone(BUMP)
    assert plateau_end(A5, BUMP) == 0.5  # drop 2, first value ≤ 1.8 is 1.0


def test_plateau():
    assert max_increase(PLATEAU) == 0.0
    assert lucas_delta(PLATEAU) == 0.0
    assert is_monotone(PLATEAU)
    assert plateau_end(PLATEAU_ALPHAS, PLATEAU) == 0.8  # drop 2.2, first value ≤ 2.08 is 0.5 at α = .8
    assert plateau_end(PLATEAU_ALPHAS, PLATEAU, fraction=0.01) == pytest.approx(0.6)  # first value ≤ 2.278
    # the chord from 2.3 to 0.1 at α = .6 is 0.98; the plateau at 2.2 sits 1.22 above it
    assert barrier(PLATEAU_ALPHAS, PLATEAU) == pytest.approx(1.22)


def test_flat():
    assert max_increase(FLAT) == 0.0
    assert barrier(np.linspace(0, 1, 4), FLAT) == 0.0
    assert lucas_delta(FLAT) == 0.0
    assert is_monotone(FLAT)
    assert math.isnan(plateau_end(np.linspace(0, 1, 4), FLAT))


def test_monotone_tolerance():
    assert not is_monotone([1.0, 1.05, 0.5])
    assert is_monotone([1.0, 1.05, 0.5], tol=0.1)


def test_barrier_uses_position_between_first_and_last_alpha():
    assert barrier([-1.0, 0.0, 1.0], [0.0, 1.0, 0.0]) == 1.0
    assert barrier([0.0, 0.5, 2.0], [0.0, 1.0, 4.0]) == 0.0  # chord at t = .25 is 1.0


def test_increase_to_start_is_never_negative():
    assert max_increase([5.0, 1.0, 0.0]) == 0.0
    assert lucas_delta([0.5]) == 0.0


def test_infinite_values_do_not_crash():
    assert max_increase([1.0, math.inf, 0.5]) == math.inf
    assert lucas_delta([1.0, math.inf, 0.5]) == math.inf
    assert barrier([0, 0.5, 1], [1.0, math.inf, 0.5]) == math.inf
    assert max_increase([math.inf, math.inf, 1.0]) == 0.0
    assert not is_monotone([1.0, math.inf])
    assert is_monotone([math.inf, math.inf, 1.0])
    assert math.isnan(plateau_end([0, 0.5, 1], [math.inf, 2.0, 1.0]))
    assert barrier([0, 0.5, 1], [1.0, 2.0, math.inf]) == 0.0


def test_distance_over_parameters_only():
    start = {"w": torch.tensor([0.0, 0.0]), "b": torch.tensor([1.0]), "bn.running_mean": torch.tensor([5.0]),
             "bn.num_batches_tracked": torch.tensor(3)}
    end = {"w": torch.tensor([3.0, 4.0]), "b": torch.tensor([1.0]), "bn.running_mean": torch.tensor([0.0]),
           "bn.num_batches_tracked": torch.tensor(9)}
    assert distance(start, end) == 5.0
    assert relative_distance(start, end) == 5.0  # ‖θ_start‖ = 1 (the bias)
    assert distance(start, end, parameter_names=["bn.running_mean"]) == 5.0
    assert relative_distance({"w": torch.zeros(2)}, {"w": torch.ones(2)}) == math.inf


def test_relative_distance_worked_example():
    assert relative_distance({"w": np.array([3.0, 4.0])}, {"w": np.array([6.0, 8.0])}) == 1.0


def test_summarize_keys():
    summary = summarize(A5, BUMP, "loss")
    assert summary == {"loss_max_increase": 1.0, "loss_barrier": 2.0, "loss_lucas_delta": 1.5,
                       "loss_monotone": False, "loss_plateau_end": 0.5}
