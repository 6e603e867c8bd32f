"""Paired statistics of a study (stardist_hier.metrics.paired) against hand computations."""

import itertools
import math

import numpy as np
import pytest

from stardist_hier.metrics.paired import (holm, minimal_detectable_effect, paired_summary, paired_t_power,
                                          seeds_for_effect, sign_flip_p, t_interval)


def test_t_interval_by_hand():
    d = [0.1, 0.3, -0.2, 0.4]
    # mean 0.15, sd = sqrt(((-.05)^2 + .15^2 + (-.35)^2 + .25^2) / 3) = sqrt(0.2100 / 3)
    sd = math.sqrt((0.05 ** 2 + 0.15 ** 2 + 0.35 ** 2 + 0.25 ** 2) / 3)
    t975_df3 = 3.182446305284263  # Student t quantile, 3 degrees of freedom (tables: 3.182)
    lo, hi = t_interval(d)
    assert lo == pytest.approx(0.15 - t975_df3 * sd / 2, abs=1e-12)
    assert hi == pytest.approx(0.15 + t975_df3 * sd / 2, abs=1e-12)
    # equal differences: a single point
    assert t_interval([0.2, 0.2, 0.2]) == pytest.approx((0.2, 0.2))
    with pytest.raises(ValueError, match="at least 2"):
        t_interval([0.1])


def test_exact_sign_flip_by_enumeration():
    d = np.array([0.3, -0.1, 0.2])
    # the 8 sign vectors by hand: |mean| of +-0.3 +-0.1 +-0.2 over 3; observed |0.4| / 3
    sums = sorted(abs(s1 * 0.3 + s2 * -0.1 + s3 * 0.2) for s1, s2, s3 in itertools.product((1, -1), repeat=3))
    assert sums == pytest.approx([0.0, 0.0, 0.2, 0.2, 0.4, 0.4, 0.6, 0.6])
    assert sign_flip_p(d) == pytest.approx(4 / 8)  # 0.4, 0.4, 0.6, 0.6 are as extreme
    assert sign_flip_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(2 / 32)  # all win: only all-+ and all--
    assert sign_flip_p([0.0, 0.0]) == 1.0


def test_monte_carlo_sign_flip_is_never_zero_and_counts_the_observed():
    d = np.full(20, 0.05)  # 20 seeds that all win: no random flip is as extreme (1 in 2**19)
    p = sign_flip_p(d, n_resamples=999, seed=3)
    assert p > 0
    assert p == pytest.approx(1 / 1000) or p == pytest.approx(2 / 1000)
    # Monte Carlo agrees with enumeration where both apply
    rng = np.random.default_rng(0)
    d = rng.normal(0.02, 0.05, 12)
    exact = sign_flip_p(d)
    mc = sign_flip_p(d, exact_max_n=5, n_resamples=20000, seed=1)
    assert abs(mc - exact) < 4 * math.sqrt(exact * (1 - exact) / 20000) + 1e-4


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([0.02]) == pytest.approx([0.02])


def test_t_interval_covers_about_95_percent_for_8_normal_differences():
    # 4000 simulated studies of 8 paired seeds; binomial sd of the coverage is 0.0034,
    # so [0.935, 0.965] is about +-4.4 sd around 0.95 (the percentile bootstrap covered ~0.88)
    rng = np.random.default_rng(19)
    true = 0.03
    hits = 0
    n_sim = 4000
    for _ in range(n_sim):
        lo, hi = t_interval(rng.normal(true, 0.07, 8))
        hits += lo <= true <= hi
    assert 0.935 <= hits / n_sim <= 0.965


def test_power_mde_and_seeds():
    # power at effect 0 is the test's level; it grows with n and with the effect
    assert paired_t_power(0.0, 0.07, 10) == pytest.approx(0.05, abs=1e-9)
    assert paired_t_power(0.05, 0.07, 20) > paired_t_power(0.05, 0.07, 10) > paired_t_power(0.02, 0.07, 10)
    # the minimal detectable effect has exactly 80% power and scales with sd
    mde = minimal_detectable_effect(0.07, 10)
    assert paired_t_power(mde, 0.07, 10) == pytest.approx(0.8, abs=1e-6)
    assert minimal_detectable_effect(0.14, 10) == pytest.approx(2 * mde, rel=1e-6)
    # normal approximation (z_.975 + z_.8) * sd / sqrt(n) = 2.8016 * sd / sqrt(n), a bit below the t value
    z = 2.8015852 * 0.07 / math.sqrt(10)
    assert z < mde < 1.2 * z
    assert math.isnan(minimal_detectable_effect(0.0, 10))
    # few seeds: finite everywhere (SciPy's noncentral t cdf is NaN far in the tail at 1 degree of freedom)
    for n in (2, 3, 4):
        assert all(0 <= paired_t_power(k / 10, 0.07, n) <= 1 for k in range(0, 80))
        e = minimal_detectable_effect(0.07, n)
        assert math.isfinite(e) and paired_t_power(e, 0.07, n) == pytest.approx(0.8, abs=1e-6)
    # seeds_for_effect is the smallest n with power >= 0.8
    n = seeds_for_effect(0.03, 0.07)
    assert paired_t_power(0.03, 0.07, n) >= 0.8 > paired_t_power(0.03, 0.07, n - 1)
    assert minimal_detectable_effect(0.07, n) <= 0.03 < minimal_detectable_effect(0.07, n - 1)
    with pytest.raises(ValueError, match="positive"):
        seeds_for_effect(0.0, 0.07)


def test_paired_summary():
    a = np.array([0.5, 0.6, 0.55, 0.7, 0.65, 0.6])
    b = a - np.array([0.1, 0.0, 0.2, -0.1, 0.1, 0.1])
    s = paired_summary(a, b)
    d = a - b
    assert s["n"] == 6 and s["diff"] == pytest.approx(d.mean()) and s["sd_diff"] == pytest.approx(d.std(ddof=1))
    assert (s["ci_low"], s["ci_high"]) == pytest.approx(t_interval(d))
    assert s["p"] == pytest.approx(sign_flip_p(d)) and s["exact"]
    assert (s["wins"], s["losses"]) == (4, 1)
    assert s["mde"] == pytest.approx(minimal_detectable_effect(d.std(ddof=1), 6))
    with pytest.raises(ValueError, match="pair up"):
        paired_summary([1, 2], [1, 2, 3])
