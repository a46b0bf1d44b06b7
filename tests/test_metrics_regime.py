"""The MLI-regime measures of losspath.metrics on hand-made curves and logits (values computed by hand)."""
import math

import numpy as np
import pytest

from losspath.metrics import common_class_share, init_dominance, plateau_end_from, regime_plateaus

A = np.linspace(0, 1, 5)  # 0, .25, .5, .75, 1


def test_init_dominance_ratios_by_hand():
    initial = np.array([[1.0, -1.0], [1.0, -1.0]])  # std over all four entries = 1
    bias = np.array([0.5, -1.5])  # spread 2
    final = np.array([[6.0, 0.0], [2.0, 0.0]])  # class means 4 and 0: spread 4
    out = init_dominance(initial, bias, final)
    assert out["initial_logit_std"] == 1.0
    assert out["ratio_bias"] == 0.5 and out["ratio_logits"] == 0.25
    free = init_dominance(initial, None, np.zeros((2, 2)))
    assert math.isnan(free["ratio_bias"]) and free["ratio_logits"] == math.inf


def test_plateau_against_a_level_starts_after_the_init():
    chance = 0.9
    # the init's own error (0.1, a lucky init) does not cut the plateau: it ends where the error leaves chance
    assert plateau_end_from(A, [0.1, 0.9, 0.9, 0.5, 0.0], chance) == 0.75  # threshold 0.9 − 0.09 = 0.81
    # below the threshold at once: the plateau is as short as the grid allows
    assert plateau_end_from(A, [0.9, 0.3, 0.2, 0.1, 0.0], chance) == 0.25
    # nothing falls below chance at the end: no plateau end
    assert math.isnan(plateau_end_from(A, [0.9, 0.9, 0.9, 0.9, 0.95], chance))
    # NaN points (undefined states) are left out
    assert plateau_end_from(A, [0.9, np.nan, 0.9, 0.5, 0.0], chance) == 0.75


def test_regime_plateaus_flag_init_dominated_loss():
    log10 = math.log(10)
    big_init = regime_plateaus(A, [30.0, 2.3, 2.3, 1.0, 0.1], [0.9, 0.9, 0.9, 0.4, 0.0], 10)
    # the loss plateau is read against log 10 = 2.303 (threshold 2.303 − 0.2203 = 2.0826), not against 30
    assert big_init["loss_plateau_end_logk"] == 0.75 and big_init["error_plateau_end_chance"] == 0.75
    assert big_init["init_dominated_loss"] and big_init["start_loss"] == 30.0
    small = regime_plateaus(A, [log10, 2.3, 2.0, 1.0, 0.1], [0.9, 0.9, 0.9, 0.4, 0.0], 10)
    assert not small["init_dominated_loss"] and small["loss_plateau_end_logk"] == 0.5


def test_common_class_share_on_the_plateau():
    counts = np.array([[5, 5, 0], [8, 2, 0], [6, 4, 0], [1, 1, 8], [0, 0, 10]])
    # plateau end 0.75: α = .25 and .5 count; class 0 holds 14 of 20 predictions there, shares 0.8 and 0.6
    assert common_class_share(A, counts, 0.75) == (0, pytest.approx(0.7))
    assert common_class_share(A, counts, 0.2)[0] == -1 and math.isnan(common_class_share(A, counts, 0.2)[1])


def test_regime_bounds_and_rank_correlation():
    from losspath.metrics import rank_correlation, regime_of

    assert [regime_of(r) for r in (0.002, 0.0999, 0.1, 0.5, 1.0, 93.0, math.nan)] == [
        "inside", "inside", "between", "between", "init-dominated", "init-dominated", "unknown"]
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties get average ranks: x ranks 1, 2.5, 2.5, 4 against y ranks 1..4 → ρ = 4.5 / sqrt(4.5 · 5)
    assert rank_correlation([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert math.isnan(rank_correlation([1, 1, 1], [1, 2, 3])) and math.isnan(rank_correlation([1, 2], [1, 2]))
