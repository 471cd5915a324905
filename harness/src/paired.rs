//! Paired statistics for the files of one A/B session ([`crate::ab`]).
//!
//! In a session, round `k` of the baseline and round `k` of the current
//! build ran next to each other, so the drift of the machine between rounds
//! is shared by both sides of a round. The statistic is therefore the
//! per-round log time ratio `ln(median(current_k) / median(baseline_k))`,
//! and its interval is Student's t interval of the mean over rounds: the
//! rounds, not the samples, are the independent units (samples within a
//! round share that round's machine state, so treating them as independent,
//! as a bootstrap over samples does, would give intervals that are too
//! narrow exactly when the machine drifts).

/// A ratio (current / baseline) with a two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioInterval {
    /// The geometric mean of the per-round ratios.
    pub ratio: f64,
    /// Lower end of the interval.
    pub lower: f64,
    /// Upper end of the interval.
    pub upper: f64,
}

/// Per-round log ratios of a run: `ln(median(cur_k) / median(base_k))` for
/// each round `k`, where round `k` holds samples
/// `k * per_round .. (k + 1) * per_round`. `None` when the sample counts do
/// not match the session's shape or a baseline median is not positive.
pub fn round_log_ratios(base: &[f64], cur: &[f64], rounds: usize, per_round: usize) -> Option<Vec<f64>> {
    let expected = rounds.checked_mul(per_round)?;
    if per_round == 0 || base.len() != expected || cur.len() != expected {
        return None;
    }
    base.chunks(per_round)
        .zip(cur.chunks(per_round))
        .map(|(b, c)| {
            let (mb, mc) = (crate::compare::median(b), crate::compare::median(c));
            (mb > 0.0 && mc > 0.0).then(|| (mc / mb).ln())
        })
        .collect()
}

/// The mean of `logs` (log ratios) with its Student's t interval at
/// `confidence`, back on the ratio scale. `None` with fewer than 2 values
/// or a non-finite one.
pub fn mean_interval(logs: &[f64], confidence: f64) -> Option<RatioInterval> {
    let n = logs.len();
    if n < 2 || logs.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mean = logs.iter().sum::<f64>() / n as f64;
    let variance = logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = student_t_quantile(0.5 + confidence / 2.0, (n - 1) as f64) * (variance / n as f64).sqrt();
    Some(RatioInterval { ratio: mean.exp(), lower: (mean - half).exp(), upper: (mean + half).exp() })
}

/// The `p` quantile of Student's t distribution with `df` degrees of
/// freedom (`p` in (0, 1), `df` > 0), by bisection on the exact CDF.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, df);
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while student_t_cdf(hi, df) < p {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The CDF of Student's t at `t` with `df` degrees of freedom.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * regularized_incomplete_beta(x, df / 2.0, 0.5);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// `I_x(a, b)`, by the continued fraction of Numerical Recipes (`betacf`),
/// using the symmetry `I_x(a, b) = 1 - I_{1-x}(b, a)` where it converges
/// faster.
fn regularized_incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_continued_fraction(1.0 - x, b, a) / b
    }
}

fn beta_continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, 9 terms: about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let sum = COEFFICIENTS[1..].iter().enumerate().fold(COEFFICIENTS[0], |acc, (i, c)| acc + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        // Two-sided 95% and 99% critical values from standard tables.
        for (p, df, expected) in [
            (0.975, 1.0, 12.706),
            (0.975, 5.0, 2.571),
            (0.975, 30.0, 2.042),
            (0.995, 3.0, 5.841),
            (0.995, 7.0, 3.499),
            (0.995, 9.0, 3.250),
            (0.995, 1000.0, 2.581),
        ] {
            let got = student_t_quantile(p, df);
            assert!((got - expected).abs() < 2e-3, "t({p}, {df}) = {got}, table {expected}");
        }
        assert_eq!(student_t_quantile(0.5, 4.0), 0.0);
        assert!((student_t_quantile(0.025, 5.0) + 2.571).abs() < 2e-3);
    }

    #[test]
    fn ln_gamma_is_exact_on_integers_and_halves() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    #[test]
    fn rounds_pair_by_position() {
        let base = [1.0, 1.0, 2.0, 2.0];
        let cur = [1.1, 1.1, 2.2, 2.2];
        let logs = round_log_ratios(&base, &cur, 2, 2).expect("shape fits");
        assert!(logs.iter().all(|l| (l - 1.1f64.ln()).abs() < 1e-12), "drift between rounds cancels: {logs:?}");
        assert!(round_log_ratios(&base, &cur, 3, 2).is_none());
        assert!(round_log_ratios(&[0.0, 1.0], &[1.0, 1.0], 2, 1).is_none());
    }

    #[test]
    fn interval_contains_the_mean_and_narrows_with_agreement() {
        let logs = [0.10f64, 0.11, 0.09, 0.10, 0.12, 0.08];
        let i = mean_interval(&logs, 0.99).expect("enough rounds");
        assert!(i.lower < i.ratio && i.ratio < i.upper);
        assert!((i.ratio - 0.10f64.exp()).abs() < 1e-12);
        assert!(i.lower > 1.05, "a steady 10% slowdown is clearly above 5%: {i:?}");
        assert!(mean_interval(&[0.1], 0.99).is_none());
    }
}
