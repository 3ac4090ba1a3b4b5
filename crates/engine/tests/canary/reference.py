#!/usr/bin/env python3
"""Reference values for the canary verdict's statistics, computed by SciPy.

Writes reference.json beside this file; crates/engine/tests/suite/canary.rs checks
firebreak_engine::canary::stats against it. CI does not run this script (it needs SciPy):
run it again, and commit what it writes, whenever a case is added.

    python3 -m venv /tmp/scipy && /tmp/scipy/bin/pip install scipy
    /tmp/scipy/bin/python crates/engine/tests/canary/reference.py

Where SciPy has no function for a figure, it is computed here from SciPy's pieces or by
brute force, independently of the Rust code:
- the two-proportion test's one-sided p-value is half of the 2x2 chi-squared test's
  (without continuity correction), on the side of the difference;
- the Hodges-Lehmann interval's rank comes from the exact distribution of U, counted from
  the Gaussian binomial coefficient (and, for small samples, by enumerating every
  ordering of the two samples as well)."""

import itertools
import json
import math
import os

import numpy as np
import scipy
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))


def normal():
    zs = [-8.0, -5.0, -1.96, -1.0, -0.3, 0.0, 0.3, 1.0, 1.5, 1.96, 2.0, 2.5, 3.0,
          4.0, 5.0, 8.0, 10.0, 20.0, 30.0, 37.0]
    ps = [1e-300, 1e-20, 1e-10, 1e-6, 0.001, 0.00208333, 0.0125, 0.025, 0.1, 0.3,
          0.5, 0.7, 0.9, 0.975, 0.9875, 0.999, 0.999999]
    return {
        "sf": [[z, float(stats.norm.sf(z))] for z in zs],
        "ppf": [[p, float(stats.norm.ppf(p))] for p in ps],
    }


def two_proportions(x1, n1, x2, n2, confidence):
    table = np.array([[x1, n1 - x1], [x2, n2 - x2]])
    p1, p2 = x1 / n1, x2 / n2
    chi2, p_two, _, _ = stats.chi2_contingency(table, correction=False)
    if p1 > p2:
        p_one = p_two / 2
    elif p1 < p2:
        p_one = 1 - p_two / 2
    else:
        p_one = 0.5
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    q = stats.norm.ppf(0.5 + confidence / 2)
    return {
        "x1": x1, "n1": n1, "x2": x2, "n2": n2, "confidence": confidence,
        "difference": p1 - p2,
        "z": math.copysign(math.sqrt(chi2), p1 - p2),
        "p_value": float(p_one),
        "low": p1 - p2 - q * se,
        "high": p1 - p2 + q * se,
    }


def exact_u_counts(m, n):
    """How many of the C(m+n, m) orderings give each U, by enumerating them all."""
    counts = [0] * (m * n + 1)
    for xs in itertools.combinations(range(m + n), m):
        # positions of the x's in the pooled order; U = pairs with x above y
        u = sum(pos - i for i, pos in enumerate(xs))
        counts[u] += 1
    return counts


def q_binomial_counts(m, n):
    """The same counts from the Gaussian binomial coefficient [m+n choose m]_q, whose
    coefficient of q^u is the number of orderings with U = u, by its Pascal rule
    [N, k] = [N-1, k-1] + q^k [N-1, k]."""
    memo = {}

    def poly(big, k):
        if k == 0 or k == big:
            return [1]
        key = (big, k)
        if key not in memo:
            a = poly(big - 1, k - 1)
            b = poly(big - 1, k)
            out = [0] * max(len(a), len(b) + k)
            for i, c in enumerate(a):
                out[i] += c
            for i, c in enumerate(b):
                out[i + k] += c
            memo[key] = out
        return memo[key]

    counts = poly(m + n, m)
    return counts + [0] * (m * n + 1 - len(counts))


def lower_critical(counts, tail):
    total = sum(counts)
    cumulative = 0
    k = 0
    for u, c in enumerate(counts):
        cumulative += c
        if cumulative / total <= tail * (1 + 1e-12):
            k = u + 1
        else:
            break
    return k


def mann_whitney(x, y, confidence):
    m, n = len(x), len(y)
    ties = len(set(x) | set(y)) < len(x) + len(y) or len(set(x)) < m or len(set(y)) < n
    exact = not ties and m <= 50 and n <= 50
    r = stats.mannwhitneyu(x, y, alternative="greater",
                           method="exact" if exact else "asymptotic", use_continuity=True)
    d = sorted(a - b for a in x for b in y)
    shift = float(np.median(d))
    tail = (1 - confidence) / 2
    if m <= 50 and n <= 50:
        counts = q_binomial_counts(m, n)
        if m + n <= 16:
            assert counts == exact_u_counts(m, n)
        k = lower_critical(counts, tail)
    else:
        z = stats.norm.ppf(1 - tail)
        k = max(0, math.floor(m * n / 2 - z * math.sqrt(m * n * (m + n + 1) / 12)))
    out = {
        "x": x, "y": y, "confidence": confidence,
        "u": float(r.statistic), "p_value": float(r.pvalue), "exact": exact,
        "shift": shift,
    }
    out["low"] = d[k - 1] if k > 0 else None
    out["high"] = d[len(d) - k] if k > 0 else None
    return out


def main():
    rng = np.random.default_rng(20261207)
    proportions = [
        two_proportions(310, 1000, 4, 1000, 0.95),
        two_proportions(155, 500, 6, 1500, 0.9975),
        two_proportions(12, 2000, 9, 6000, 0.95),
        two_proportions(3, 400, 4, 1200, 0.99),
        two_proportions(0, 800, 2, 2400, 0.95),
        two_proportions(52, 1000, 2, 1000, 0.99583),
        two_proportions(8, 1000, 8, 1000, 0.95),
        two_proportions(1, 10, 0, 10, 0.95),
        two_proportions(40000, 200000, 1200, 600000, 0.9),
    ]
    ranks = [
        mann_whitney([2.0, 3.0], [1.0, 4.0], 0.95),
        mann_whitney([5.1, 6.3, 7.2], [1.2, 2.4, 3.1], 0.9),
        mann_whitney([1310.0, 1290.0, 1402.0, 1333.0, 1378.0, 1350.0],
                     [520.0, 540.0, 533.0, 511.0, 560.0, 548.0], 0.99),
        mann_whitney([1.0, 2.0, 2.0, 3.0, 5.0], [2.0, 3.0, 3.0, 4.0], 0.95),
        mann_whitney([0.4, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2],
                     [0.45, 0.95, 0.15, 0.75, 0.35, 0.85, 0.25, 0.5], 0.9),
    ]
    # Two larger samples: one shifted (exact, 20 and 25 windows), one the same (ties).
    a = [round(float(v), 6) for v in rng.lognormal(6.3, 0.1, 20)]
    b = [round(float(v), 6) for v in rng.lognormal(6.2, 0.1, 25)]
    ranks.append(mann_whitney(a, b, 0.99))
    c = [float(v) for v in rng.integers(500, 520, 60)]
    d = [float(v) for v in rng.integers(500, 520, 70)]
    ranks.append(mann_whitney(c, d, 0.95))
    out = {
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "normal": normal(),
        "two_proportions": proportions,
        "mann_whitney": ranks,
    }
    with open(os.path.join(HERE, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
