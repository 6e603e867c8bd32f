"""Paired comparisons over seeds: intervals, p-values, Holm, and what a design can detect.

TF-free. A study (:mod:`stardist_hier.training.experiment.study`) compares two rows by
their per-seed differences ``d = a - b``; this module summarises ``d``:

- :func:`t_interval`: the paired *t* interval ``mean ± t_{n-1} sd / sqrt(n)`` (it covers
  at its nominal level for normal differences at any ``n``; the percentile bootstrap over
  7 to 10 seeds covered 83 to 90% instead of 95%);
- :func:`sign_flip_p`: the two-sided sign-flip permutation p-value of the mean, exact by
  enumerating all ``2**n`` sign vectors for ``n <= exact_max_n``, else Monte Carlo counted
  as ``(1 + #extreme) / (1 + B)`` (the observed statistic is one of the permutations, so
  the p-value is never 0);
- :func:`holm`: Holm's step-down adjustment (applied to the primary comparisons only);
- :func:`paired_t_power`, :func:`minimal_detectable_effect` and :func:`seeds_for_effect`:
  power of the two-sided paired *t* test, the smallest true mean difference it detects
  with 80% power given the sd of the differences and ``n``, and the number of seeds a
  target effect needs;
- :func:`paired_summary`: all of the above for one comparison, as a plain dict.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = ["t_interval", "sign_flip_p", "holm", "paired_t_power", "minimal_detectable_effect",
           "seeds_for_effect", "paired_summary", "EXACT_MAX_N"]

EXACT_MAX_N = 16  # 2**16 sign vectors: exact enumeration up to here, Monte Carlo above


def _diffs(d) -> np.ndarray:
    d = np.asarray(d, float).ravel()
    if not np.all(np.isfinite(d)):
        raise ValueError("paired differences must be finite numbers")
    return d


def t_interval(d, *, level: float = 0.95) -> tuple:
    """Paired *t* interval of the mean of ``d``: ``mean ± t_{n-1, (1+level)/2} · sd / sqrt(n)``.

    Parameters
    ----------
    d : array_like
        Paired differences (at least 2).
    level : float
        Coverage, in (0, 1).

    Returns
    -------
    (float, float)
        The interval; a single point when every difference is equal.
    """
    from scipy.stats import t as student_t

    d = _diffs(d)
    if len(d) < 2:
        raise ValueError(f"a t interval needs at least 2 paired differences, got {len(d)}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    m = float(d.mean())
    half = float(student_t.ppf((1 + level) / 2, len(d) - 1)) * float(d.std(ddof=1)) / math.sqrt(len(d))
    return m - half, m + half


def sign_flip_p(d, *, exact_max_n: int = EXACT_MAX_N, n_resamples: int = 100000, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p-value of the mean of ``d`` (H0: symmetric about 0).

    Exact for ``len(d) <= exact_max_n``: the share of all ``2**n`` sign vectors whose
    ``|mean|`` is at least the observed one (the identity is one of them, so ``p >= 2/2**n``
    unless every difference is 0). Above, Monte Carlo with ``n_resamples`` random sign
    vectors drawn from ``numpy.random.default_rng(seed)``, counted as
    ``(1 + #extreme) / (1 + n_resamples)``: never 0.
    """
    d = _diffs(d)
    n = len(d)
    if n == 0:
        raise ValueError("a sign-flip p-value needs at least 1 paired difference")
    obs = abs(float(d.mean()))
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if n <= exact_max_n:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        return float(np.mean(np.abs(signs @ d) / n >= obs - tol))
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, n_resamples, 10000):  # in chunks: bounded memory for any n
        k = min(10000, n_resamples - start)
        signs = rng.choice((1.0, -1.0), size=(k, n))
        extreme += int(np.sum(np.abs(signs @ d) / n >= obs - tol))
    return (1 + extreme) / (1 + n_resamples)


def holm(pvalues) -> list:
    """Holm-adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    p = np.asarray(pvalues, float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        adj[i] = min(1.0, running)
    return adj.tolist()


def paired_t_power(effect: float, sd: float, n: int, *, alpha: float = 0.05) -> float:
    """Power of the two-sided paired *t* test at level ``alpha`` for a true mean difference ``effect``.

    ``P(|T| > t_{n-1, 1-alpha/2})`` with ``T`` noncentral *t* (``n - 1`` degrees of freedom,
    noncentrality ``effect · sqrt(n) / sd``).
    """
    from scipy.stats import nct
    from scipy.stats import t as student_t

    if n < 2:
        raise ValueError(f"the paired t test needs n >= 2, got {n!r}")
    if not sd > 0:
        raise ValueError(f"sd must be positive, got {sd!r}")
    df = n - 1
    crit = float(student_t.ppf(1 - alpha / 2, df))
    nc = abs(effect) * math.sqrt(n) / sd
    # P(T < -crit | nc) = P(T > crit | -nc); SciPy's nct.cdf returns NaN far in the tail at few
    # degrees of freedom, where the lower tail is negligible (0 to double precision)
    lower = float(nct.sf(crit, df, -nc))
    return float(nct.sf(crit, df, nc)) + (lower if math.isfinite(lower) else 0.0)


def minimal_detectable_effect(sd: float, n: int, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference the two-sided paired *t* test detects with ``power``.

    Solves :func:`paired_t_power` ``(effect, sd, n) = power`` for ``effect`` (in the units of
    ``sd``, the standard deviation of the paired differences). ``nan`` when ``sd`` is not
    positive (every difference equal: no spread to size a design from).
    """
    from scipy.optimize import brentq

    if not (sd > 0 and math.isfinite(sd)):
        return math.nan
    if n < 2:
        raise ValueError(f"the paired t test needs n >= 2, got {n!r}")
    hi = sd
    while paired_t_power(hi, sd, n, alpha=alpha) < power:
        hi *= 2
    return float(brentq(lambda e: paired_t_power(e, sd, n, alpha=alpha) - power, 0.0, hi, xtol=1e-10 * sd))


def seeds_for_effect(effect: float, sd: float, *, alpha: float = 0.05, power: float = 0.8,
                     n_max: int = 10000) -> int:
    """The fewest paired seeds (>= 2) at which the paired *t* test detects ``effect`` with ``power``.

    Raises
    ------
    ValueError
        When ``effect`` or ``sd`` is not positive, or more than ``n_max`` seeds would be needed.
    """
    if not (effect > 0 and sd > 0):
        raise ValueError(f"effect and sd must be positive, got effect={effect!r}, sd={sd!r}")
    for n in range(2, n_max + 1):
        if paired_t_power(effect, sd, n, alpha=alpha) >= power:
            return n
    raise ValueError(f"an effect of {effect:g} with sd {sd:g} needs more than {n_max} seeds")


def paired_summary(a, b, *, level: float = 0.95, seed: int = 0, n_resamples: int = 100000,
                   power: float = 0.8) -> dict:
    """Everything a study table reports about ``a - b`` over paired seeds.

    Returns
    -------
    dict
        ``n``, ``mean_a``, ``mean_b``, ``diff`` (mean of ``a - b``), ``sd_diff``, ``ci_low`` /
        ``ci_high`` (:func:`t_interval` at ``level``), ``p`` (:func:`sign_flip_p`), ``exact``
        (whether ``p`` is exact), ``wins`` / ``losses``, and ``mde`` (the
        :func:`minimal_detectable_effect` at ``power`` and ``alpha = 1 - level``, from the
        observed ``sd_diff`` and ``n``).
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"a and b must pair up, got {a.shape} and {b.shape}")
    d = _diffs(a - b)
    n = len(d)
    lo, hi = t_interval(d, level=level)
    sd = float(d.std(ddof=1))
    return {"n": n, "mean_a": float(a.mean()), "mean_b": float(b.mean()), "diff": float(d.mean()),
            "sd_diff": sd, "ci_low": lo, "ci_high": hi, "p": sign_flip_p(d, seed=seed, n_resamples=n_resamples),
            "exact": n <= EXACT_MAX_N, "wins": int((d > 0).sum()), "losses": int((d < 0).sum()),
            "mde": minimal_detectable_effect(sd, n, alpha=1 - level, power=power)}
