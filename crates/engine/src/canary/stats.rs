//! The statistics a canary verdict rests on, in plain Rust: the normal distribution, a
//! test of two proportions on counts, and the Mann-Whitney U rank test with the
//! Hodges-Lehmann estimate of a shift and its confidence interval.
//!
//! Each is checked against reference values computed by SciPy
//! (`crates/engine/tests/canary/reference.py` and the JSON it wrote beside it).

/// The upper tail of the standard normal distribution, P(Z > z), accurate to about 14
/// significant digits over the whole line (p-values down to 1e-300 keep their digits).
pub fn normal_sf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z < 0.0 {
        return 1.0 - normal_sf(-z);
    }
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// P(Z ≤ z).
pub fn normal_cdf(z: f64) -> f64 {
    normal_sf(-z)
}

/// The complementary error function for x ≥ 0: a series of positive terms below 2 (no
/// cancellation), a continued fraction above.
fn erfc(x: f64) -> f64 {
    if x < 2.0 {
        // erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1))
        let mut term = x;
        let mut sum = x;
        let x2 = x * x;
        let mut n = 0.0;
        while term > sum * 1e-17 {
            n += 1.0;
            term *= 2.0 * x2 / (2.0 * n + 1.0);
            sum += term;
        }
        1.0 - 2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
    } else {
        // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))),
        // evaluated by the modified Lentz method.
        let tiny = 1e-300;
        let mut f = x;
        let mut c = x;
        let mut d = 0.0;
        for k in 1..1000 {
            let a = k as f64 / 2.0;
            d = x + a * d;
            d = if d == 0.0 { tiny } else { d };
            c = x + a / c;
            c = if c == 0.0 { tiny } else { c };
            d = 1.0 / d;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (-x * x).exp() / std::f64::consts::PI.sqrt() / f
    }
}

/// The standard normal quantile: the z with P(Z ≤ z) = p, for 0 < p < 1.
pub fn normal_ppf(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || p.is_nan() {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    // A rational first guess (Acklam's), then Newton's steps on the accurate cdf: on
    // Φ(z) − p below 0, and on the upper tail (where its digits are) above.
    let mut z = acklam(p);
    for _ in 0..50 {
        let density = (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        if density == 0.0 {
            break;
        }
        let step = if z < 0.0 {
            (normal_cdf(z) - p) / density
        } else {
            (normal_sf(z) - (1.0 - p)) / -density
        };
        z -= step;
        if step.abs() <= 1e-15 * z.abs().max(1.0) {
            break;
        }
    }
    z
}

fn acklam(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Two proportions compared: `x1` of `n1` (the new revision's failed requests) against
/// `x2` of `n2` (the stable one's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proportions {
    pub p1: f64,
    pub p2: f64,
    /// p1 − p2.
    pub difference: f64,
    /// p1 / p2 (infinite when p2 is 0 and p1 is not; NaN when both are 0).
    pub ratio: f64,
    /// The pooled z statistic of H0: p1 = p2.
    pub z: f64,
    /// One-sided: the chance of a difference at least this large were p1 = p2.
    pub p_value: f64,
    /// The Wald interval of the difference at the confidence asked.
    pub low: f64,
    pub high: f64,
}

/// The two-proportion z test (pooled, as a 2×2 χ² test without continuity correction is),
/// one-sided towards p1 > p2, with the difference's Wald interval at `confidence`
/// (two-sided, e.g. 0.95). `None` when either side has no requests.
pub fn two_proportions(x1: u64, n1: u64, x2: u64, n2: u64, confidence: f64) -> Option<Proportions> {
    if n1 == 0 || n2 == 0 || x1 > n1 || x2 > n2 {
        return None;
    }
    let (x1f, n1f, x2f, n2f) = (x1 as f64, n1 as f64, x2 as f64, n2 as f64);
    let p1 = x1f / n1f;
    let p2 = x2f / n2f;
    let pooled = (x1f + x2f) / (n1f + n2f);
    let se0 = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    let difference = p1 - p2;
    let z = if se0 > 0.0 {
        difference / se0
    } else if difference == 0.0 {
        0.0
    } else {
        f64::INFINITY.copysign(difference)
    };
    let se = (p1 * (1.0 - p1) / n1f + p2 * (1.0 - p2) / n2f).sqrt();
    let q = normal_ppf(0.5 + confidence / 2.0);
    Some(Proportions {
        p1,
        p2,
        difference,
        ratio: p1 / p2,
        z,
        p_value: normal_sf(z),
        low: difference - q * se,
        high: difference + q * se,
    })
}

/// The Mann-Whitney U test of "x is stochastically greater than y" (one-sided), with the
/// Hodges-Lehmann estimate of the shift x − y and its distribution-free interval.
#[derive(Debug, Clone, PartialEq)]
pub struct RankTest {
    /// U of x: the pairs (xᵢ, yⱼ) with xᵢ > yⱼ, ties counting one half.
    pub u: f64,
    pub p_value: f64,
    /// Whether the p-value is exact (no ties, small samples) or the normal approximation
    /// with tie and continuity corrections.
    pub exact: bool,
    /// The median of the differences xᵢ − yⱼ.
    pub shift: f64,
    /// The interval of the shift at the confidence asked (exact when `exact`).
    pub low: f64,
    pub high: f64,
}

/// Largest samples whose exact distribution is computed (the count table is m·n·(m+n)).
const EXACT_UP_TO: usize = 50;

/// Mann-Whitney U, one-sided towards x > y, at `confidence` for the shift's interval.
/// `None` when either sample is empty or holds a value that is not a number.
pub fn mann_whitney(x: &[f64], y: &[f64], confidence: f64) -> Option<RankTest> {
    let (m, n) = (x.len(), y.len());
    if m == 0 || n == 0 || x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    // Ranks of the pooled sample, ties given their average rank.
    let mut pooled: Vec<(f64, bool)> = x
        .iter()
        .map(|v| (*v, true))
        .chain(y.iter().map(|v| (*v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i;
        while j + 1 < pooled.len() && pooled[j + 1].0 == pooled[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        rank_sum_x += rank * pooled[i..=j].iter().filter(|(_, is_x)| *is_x).count() as f64;
        i = j + 1;
    }
    let (mf, nf) = (m as f64, n as f64);
    let u = rank_sum_x - mf * (mf + 1.0) / 2.0;
    let small = m <= EXACT_UP_TO && n <= EXACT_UP_TO;
    let dist = small.then(|| UDistribution::of(m, n));
    let exact = tie_term == 0.0 && small;
    let p_value = if let (true, Some(dist)) = (exact, &dist) {
        // P(U ≥ u)
        dist.sf_at_least(u.round() as usize)
    } else {
        let total = mf + nf;
        let sigma = (mf * nf / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)))).sqrt();
        let z = (u - mf * nf / 2.0 - 0.5) / sigma;
        normal_sf(z)
    };

    // Hodges-Lehmann: the median of the pairwise differences, and the interval between
    // the k-th smallest and k-th largest of them.
    let mut d: Vec<f64> = x
        .iter()
        .flat_map(|a| y.iter().map(move |b| a - b))
        .collect();
    d.sort_by(f64::total_cmp);
    let shift = median_sorted(&d).unwrap_or(f64::NAN);
    let tail = (1.0 - confidence) / 2.0;
    let k = if let Some(dist) = &dist {
        dist.lower_critical(tail)
    } else {
        let z = normal_ppf(1.0 - tail);
        let k = mf * nf / 2.0 - z * (mf * nf * (mf + nf + 1.0) / 12.0).sqrt();
        k.floor().max(0.0) as usize
    };
    let (low, high) = if k == 0 {
        (f64::NEG_INFINITY, f64::INFINITY)
    } else {
        (d[k - 1], d[d.len() - k])
    };
    Some(RankTest {
        u,
        p_value,
        exact,
        shift,
        low,
        high,
    })
}

/// The median (the mean of the middle two of an even number); none of nothing.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    median_sorted(&s)
}

fn median_sorted(v: &[f64]) -> Option<f64> {
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The exact null distribution of U for samples of m and n without ties: the share of
/// the C(m+n, m) orderings with each value of U.
struct UDistribution {
    pmf: Vec<f64>,
}

/// Distributions already counted, by (m, n): a rollout's looks ask for the same few
/// again and again. Cleared when it holds more than this many.
const KEPT_DISTRIBUTIONS: usize = 256;

impl UDistribution {
    fn of(m: usize, n: usize) -> std::sync::Arc<UDistribution> {
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex, OnceLock};
        type Kept = Mutex<HashMap<(usize, usize), Arc<UDistribution>>>;
        static KEPT: OnceLock<Kept> = OnceLock::new();
        let kept = KEPT.get_or_init(Default::default);
        if let Some(d) = kept.lock().unwrap_or_else(|e| e.into_inner()).get(&(m, n)) {
            return d.clone();
        }
        let d = Arc::new(UDistribution::new(m, n));
        let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= KEPT_DISTRIBUTIONS {
            kept.clear();
        }
        kept.insert((m, n), d.clone());
        d
    }

    fn new(m: usize, n: usize) -> UDistribution {
        // counts[j][u]: orderings of i x's and j y's with U = u, built row by row over i
        // (adding the largest x, which beats all j y's, or the largest y, which beats none).
        let max_u = m * n;
        let mut prev: Vec<Vec<f64>> = (0..=n)
            .map(|_| {
                let mut v = vec![0.0; max_u + 1];
                v[0] = 1.0;
                v
            })
            .collect();
        for i in 1..=m {
            let mut row: Vec<Vec<f64>> = Vec::with_capacity(n + 1);
            for j in 0..=n {
                let mut v = vec![0.0; max_u + 1];
                for u in 0..=(i * j) {
                    // the largest is an x: it beats the j y's
                    let from_x = if u >= j { prev[j][u - j] } else { 0.0 };
                    // the largest is a y: U is that of i x's and j−1 y's
                    let from_y = if j > 0 { row[j - 1][u] } else { 0.0 };
                    v[u] = from_x + from_y;
                }
                row.push(v);
            }
            prev = row;
        }
        let counts = &prev[n];
        let total: f64 = counts.iter().sum();
        UDistribution {
            pmf: counts.iter().map(|c| c / total).collect(),
        }
    }

    /// P(U ≥ u).
    fn sf_at_least(&self, u: usize) -> f64 {
        self.pmf.iter().skip(u).sum::<f64>().min(1.0)
    }

    /// The largest k with P(U ≤ k − 1) ≤ `tail` (0 when even P(U = 0) is larger): the
    /// rank of the interval's ends among the sorted pairwise differences.
    fn lower_critical(&self, tail: f64) -> usize {
        let mut cumulative = 0.0;
        let mut k = 0;
        for (u, p) in self.pmf.iter().enumerate() {
            cumulative += p;
            if cumulative <= tail * (1.0 + 1e-12) {
                k = u + 1;
            } else {
                break;
            }
        }
        k
    }
}
