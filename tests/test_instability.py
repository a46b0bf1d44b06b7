"""Frankle et al. 2020 (LMC): the error barrier height on hand-made curves, and the instability study."""
import math

import numpy as np
import pytest

from losspath.metrics import barrier, barrier_height


def test_barrier_height_is_the_maximum_minus_the_mean_of_the_endpoints():
    # ends 0.10 and 0.30 (mean 0.20), peak 0.50 at α = 0.5: height 0.30; the chord there is 0.20 too
    alphas, error = [0, 0.25, 0.5, 0.75, 1], [0.10, 0.30, 0.50, 0.35, 0.30]
    assert barrier_height(error) == pytest.approx(0.30)
    assert barrier(alphas, error) == pytest.approx(0.30)


def test_barrier_height_and_chord_barrier_differ_for_unequal_endpoints():
    # a bump right after a low start: chord at α = 0.25 is 0.15, so the chord barrier is 0.25; the height
    # is 0.40 − 0.20 = 0.20
    alphas, error = [0, 0.25, 0.5, 0.75, 1], [0.10, 0.40, 0.30, 0.30, 0.30]
    assert barrier_height(error) == pytest.approx(0.20)
    assert barrier(alphas, error) == pytest.approx(0.25)
    # a curve rising straight from 0.1 to 0.3 has no chord barrier but a height of half the rise
    assert barrier(alphas, [0.1, 0.15, 0.2, 0.25, 0.3]) == pytest.approx(0.0)
    assert barrier_height([0.1, 0.15, 0.2, 0.25, 0.3]) == pytest.approx(0.10)


def test_barrier_height_of_a_convex_line_is_zero():
    assert barrier_height([0.2, 0.1, 0.05, 0.1, 0.2]) == 0.0


def test_barrier_height_skips_undefined_points_and_is_nan_without_any():
    assert barrier_height([0.1, np.nan, 0.6, 0.1]) == pytest.approx(0.5)
    assert math.isnan(barrier_height([np.nan, np.nan]))
