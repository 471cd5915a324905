//! Measuring candidates and choosing one, with a noise-aware stopping rule.
//!
//! The seed timed each candidate once and kept the fastest sample, so one
//! lucky or unlucky dispatch decided the result. Here:
//!
//! 1. **Interleaved rounds.** Each round times every candidate still in the
//!    race once, in order. Slow drift (clocks ramping, a neighbour's load)
//!    then hits all candidates alike instead of whichever ran last.
//! 2. **Best-of-N by minimum.** Kernel-time noise is one-sided (interference
//!    only adds time), so a candidate's fastest sample is the best estimate
//!    of its true cost. Ties go to the lower median, then to the earlier
//!    candidate.
//! 3. **Stop when the choice is clear.** From round `min_rounds` on, each
//!    candidate is compared with the leader by a rank test (Mann-Whitney U):
//!    over all pairs of one leader sample and one candidate sample, count
//!    the pairs the leader wins (ties count half). If both had the same
//!    timing distribution that count would be about half the pairs; a
//!    candidate is dropped from the race once the count is [`DROP_Z`]
//!    standard deviations above that (normal approximation with continuity
//!    correction; one-sided p < 0.7%). The sweep ends, `confident`, when one
//!    candidate is left, or after `max_rounds`, not confident (the
//!    candidates are too close for the noise; the pick is still the best
//!    estimate).
//!
//! Why ranks rather than "the leader's slowest sample beats the
//! candidate's fastest": when the noise band is wider than the gap between
//! two candidates, their sample ranges overlap more, not less, as samples
//! accumulate, so that rule can never become confident; the share of pairs
//! won keeps converging to its true value, so the rank test can.
//!
//! Dropped candidates are never measured again, so a sweep costs about
//! `min_rounds * candidates` measurements plus a few rounds between the
//! close contenders.

use serde::{Deserialize, Serialize};

use super::{BackendTimer, Decision, ProgramKey, TunerStore};
use crate::{Error, Result};

/// How far (in standard deviations of the Mann-Whitney U statistic under
/// "no difference") the leader must be ahead for a candidate to be dropped.
/// 2.5 is a one-sided p of about 0.6%; with 5 samples each it takes a clean
/// sweep (every leader sample faster than every candidate sample).
pub const DROP_Z: f64 = 2.5;

/// How many rounds a sweep may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunerConfig {
    /// Rounds before any candidate may be dropped (the N of best-of-N).
    pub min_rounds: u32,
    /// Rounds after which the sweep stops even if it is not confident.
    pub max_rounds: u32,
}

impl Default for TunerConfig {
    /// 5 to 20 rounds: 5 is the fewest at which the rank test can reach
    /// [`DROP_Z`] at all.
    fn default() -> Self {
        TunerConfig { min_rounds: 5, max_rounds: 20 }
    }
}

/// What was measured for one candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateReport {
    /// The workgroup size.
    pub workgroup: [u32; 3],
    /// Times it was measured.
    pub samples: u32,
    /// Fastest sample, in nanoseconds.
    pub min_ns: u64,
    /// Median sample (mean of the two middle ones for an even count).
    pub median_ns: u64,
    /// Slowest sample.
    pub max_ns: u64,
    /// Round after which it was dropped as clearly slower; `None` if it
    /// stayed in the race to the end.
    pub dropped_after_round: Option<u32>,
}

/// The result of one sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuneOutcome {
    /// The program the sweep was for.
    pub key: ProgramKey,
    /// The chosen workgroup size.
    pub best: [u32; 3],
    /// Whether every other candidate was shown clearly slower (see the
    /// module docs); false when the round cap ended the sweep first.
    pub confident: bool,
    /// Rounds run.
    pub rounds: u32,
    /// Timer calls made, all candidates together.
    pub measurements: u64,
    /// Per candidate, in the order they were given (duplicates removed).
    pub candidates: Vec<CandidateReport>,
}

impl TuneOutcome {
    /// The report of the chosen candidate.
    pub fn best_report(&self) -> Option<&CandidateReport> {
        self.candidates.iter().find(|c| c.workgroup == self.best)
    }

    /// The decision to persist.
    pub fn decision(&self) -> Decision {
        let (min_ns, median_ns) = self.best_report().map_or((0, 0), |c| (c.min_ns, c.median_ns));
        Decision { workgroup: self.best, min_ns, median_ns, samples: self.measurements, confident: self.confident }
    }
}

/// The answer of [`Tuner::tune_cached`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuned {
    /// The decision in force.
    pub decision: Decision,
    /// The sweep that made it; `None` when a stored decision was reused
    /// (and nothing was measured).
    pub sweep: Option<TuneOutcome>,
}

impl Tuned {
    /// Whether the decision came from the store without measuring.
    pub fn reused(&self) -> bool {
        self.sweep.is_none()
    }
}

/// The workgroup-size tuner. Holds only its configuration: state lives in
/// the [`TunerStore`], so one tuner serves every adapter and program.
#[derive(Debug, Clone, Default)]
pub struct Tuner {
    config: TunerConfig,
}

impl Tuner {
    /// A tuner with `config`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `min_rounds` is 0 or `max_rounds` is
    /// below `min_rounds`.
    pub fn new(config: TunerConfig) -> Result<Self> {
        if config.min_rounds == 0 {
            return Err(Error::config("tuner: min_rounds must be at least 1"));
        }
        if config.max_rounds < config.min_rounds {
            return Err(Error::config(format!(
                "tuner: max_rounds ({}) is below min_rounds ({})",
                config.max_rounds, config.min_rounds
            )));
        }
        Ok(Tuner { config })
    }

    /// The configuration in force.
    pub fn config(&self) -> TunerConfig {
        self.config
    }

    /// Measures `candidates` for `key` with `timer` and picks the fastest
    /// (rules in the module docs).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty candidate list; the timer's
    /// error, unchanged, if a measurement fails (the sweep stops there).
    pub fn tune<T: BackendTimer + ?Sized>(
        &self,
        key: &ProgramKey,
        candidates: &[[u32; 3]],
        timer: &mut T,
    ) -> Result<TuneOutcome> {
        // A duplicate would race itself and could never be beaten clearly.
        let mut unique: Vec<[u32; 3]> = Vec::with_capacity(candidates.len());
        for &c in candidates {
            if !unique.contains(&c) {
                unique.push(c);
            }
        }
        if unique.is_empty() {
            return Err(Error::config(format!("tuner: no candidate workgroup sizes for program {key}")));
        }
        let mut runs: Vec<Run> = unique.iter().map(|&wg| Run::new(wg)).collect();
        let mut measurements = 0u64;
        let mut rounds = 0;
        let mut confident = false;
        while rounds < self.config.max_rounds {
            rounds += 1;
            for run in runs.iter_mut().filter(|r| r.dropped_after.is_none()) {
                let ns = timer.time_ns(key, run.workgroup)?;
                run.push(ns);
                measurements += 1;
            }
            if rounds < self.config.min_rounds {
                continue;
            }
            let lead = leader(&runs);
            let mut left = 1;
            for i in 0..runs.len() {
                if i == lead || runs[i].dropped_after.is_some() {
                    continue;
                }
                if rank_z(&runs[lead].samples, &runs[i].samples) >= DROP_Z {
                    runs[i].dropped_after = Some(rounds);
                } else {
                    left += 1;
                }
            }
            if left == 1 {
                confident = true;
                break;
            }
        }
        let best = runs[leader(&runs)].workgroup;
        Ok(TuneOutcome {
            key: *key,
            best,
            confident,
            rounds,
            measurements,
            candidates: runs.into_iter().map(Run::report).collect(),
        })
    }

    /// The decision for `key` on `adapter`: the stored one when there is one
    /// and it is still among `candidates` (limits can change with a driver),
    /// with no measurement at all; otherwise a fresh [`tune`](Self::tune),
    /// whose decision is put in `store`. Saving the store is the caller's
    /// call ([`TunerStore::save`]), so a batch of sweeps writes once.
    ///
    /// # Errors
    /// As [`tune`](Self::tune).
    pub fn tune_cached<T: BackendTimer + ?Sized>(
        &self,
        store: &mut TunerStore,
        adapter: &str,
        key: &ProgramKey,
        candidates: &[[u32; 3]],
        timer: &mut T,
    ) -> Result<Tuned> {
        if let Some(d) = store.get(adapter, key).filter(|d| candidates.contains(&d.workgroup)) {
            return Ok(Tuned { decision: *d, sweep: None });
        }
        let sweep = self.tune(key, candidates, timer)?;
        let decision = sweep.decision();
        store.insert(adapter, *key, decision);
        Ok(Tuned { decision, sweep: Some(sweep) })
    }
}

/// One candidate's samples during a sweep.
#[derive(Debug)]
struct Run {
    workgroup: [u32; 3],
    samples: Vec<u64>,
    min: u64,
    max: u64,
    dropped_after: Option<u32>,
}

impl Run {
    fn new(workgroup: [u32; 3]) -> Self {
        Run { workgroup, samples: Vec::new(), min: u64::MAX, max: 0, dropped_after: None }
    }

    fn push(&mut self, ns: u64) {
        self.samples.push(ns);
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
    }

    fn median(&self) -> u64 {
        let mut s = self.samples.clone();
        s.sort_unstable();
        match s.len() {
            0 => 0,
            n if !n.is_multiple_of(2) => s[n / 2],
            n => ((u128::from(s[n / 2 - 1]) + u128::from(s[n / 2])) / 2) as u64,
        }
    }

    fn report(self) -> CandidateReport {
        CandidateReport {
            workgroup: self.workgroup,
            samples: self.samples.len() as u32,
            min_ns: if self.samples.is_empty() { 0 } else { self.min },
            median_ns: self.median(),
            max_ns: self.max,
            dropped_after_round: self.dropped_after,
        }
    }
}

/// How far `a`'s samples are ahead of (faster than) `b`'s: the Mann-Whitney
/// U statistic (pairs with `a < b`, ties counting half) as a z-score under
/// "same distribution", with continuity correction. O(n * m); n and m are
/// at most `max_rounds`.
fn rank_z(a: &[u64], b: &[u64]) -> f64 {
    let (n, m) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let twice_u: u64 =
        a.iter().map(|&x| b.iter().map(|&y| u64::from(x < y) * 2 + u64::from(x == y)).sum::<u64>()).sum();
    let mean = n * m / 2.0;
    // The tie correction is left out: it only matters for timers with a
    // coarse clock, and leaving it out makes the test more cautious.
    let sd = (n * m * (n + m + 1.0) / 12.0).sqrt();
    (twice_u as f64 / 2.0 - mean - 0.5) / sd
}

/// Index of the best candidate still in the race: lowest minimum, then
/// lowest median, then earliest. A dropped candidate is never picked, even
/// if one lucky sample gives it the lowest minimum: the rank test showed its
/// samples as a whole are slower.
fn leader(runs: &[Run]) -> usize {
    let mut best: Option<(usize, u64, u64)> = None;
    for (i, r) in runs.iter().enumerate().filter(|(_, r)| r.dropped_after.is_none()) {
        // The median sorts a copy; only compute it to break a tie on min.
        let better = match best {
            None => true,
            Some((_, min, median)) => r.min < min || (r.min == min && r.median() < median),
        };
        if better {
            best = Some((i, r.min, r.median()));
        }
    }
    best.map_or(0, |(i, _, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuner::SyntheticTimer;

    /// The seed's table: 128 is fastest.
    fn seed_cost(wg: [u32; 3]) -> u64 {
        match wg[0] {
            64 => 12_000,
            128 => 8_000,
            256 => 10_000,
            _ => 50_000,
        }
    }

    #[test]
    fn noiseless_sweep_picks_the_seed_winner_after_min_rounds() {
        let key = ProgramKey::new(b"p", &[]);
        let mut timer = SyntheticTimer::new(0, 0.0, seed_cost);
        let out = Tuner::default().tune(&key, &[[64, 1, 1], [128, 1, 1], [256, 1, 1]], &mut timer).unwrap();
        assert_eq!(out.best, [128, 1, 1]);
        assert!(out.confident);
        assert_eq!((out.rounds, out.measurements), (5, 15));
        let d = out.decision();
        assert_eq!((d.min_ns, d.median_ns, d.samples), (8_000, 8_000, 15));
        assert_eq!(out.candidates[0].dropped_after_round, Some(5));
    }

    #[test]
    fn indistinguishable_candidates_hit_the_cap_unconfident() {
        let key = ProgramKey::new(b"p", &[]);
        let mut timer = SyntheticTimer::new(3, 0.3, |_| 1_000);
        let tuner = Tuner::new(TunerConfig { min_rounds: 2, max_rounds: 6 }).unwrap();
        let out = tuner.tune(&key, &[[32, 1, 1], [64, 1, 1]], &mut timer).unwrap();
        assert!(!out.confident);
        assert_eq!((out.rounds, out.measurements), (6, 12));
    }

    #[test]
    fn rank_z_matches_hand_computed_values() {
        // 5 vs 5, every pair won: U = 25, mean 12.5, sd = sqrt(25 * 11 / 12).
        let z = rank_z(&[1, 2, 3, 4, 5], &[6, 7, 8, 9, 10]);
        assert!((z - 12.0 / (275.0f64 / 12.0).sqrt()).abs() < 1e-12, "{z}");
        assert!(z >= DROP_Z);
        assert!(rank_z(&[6, 7, 8, 9, 10], &[1, 2, 3, 4, 5]) < 0.0);
        // All ties: U is exactly the mean.
        assert!(rank_z(&[5; 4], &[5; 4]) < 0.0);
        assert_eq!(rank_z(&[], &[1]), 0.0);
    }

    #[test]
    fn timer_errors_stop_the_sweep() {
        struct Failing(u32);
        impl BackendTimer for Failing {
            fn time_ns(&mut self, _: &ProgramKey, wg: [u32; 3]) -> Result<u64> {
                self.0 += 1;
                if wg[0] == 128 { Err(Error::config("device lost")) } else { Ok(1) }
            }
        }
        let mut t = Failing(0);
        let err = Tuner::default().tune(&ProgramKey::new(b"p", &[]), &[[64, 1, 1], [128, 1, 1], [256, 1, 1]], &mut t);
        assert!(err.unwrap_err().to_string().contains("device lost"));
        assert_eq!(t.0, 2, "nothing measured after the failure");
    }

    #[test]
    fn bad_config_and_empty_candidates() {
        assert!(Tuner::new(TunerConfig { min_rounds: 0, max_rounds: 3 }).is_err());
        assert!(Tuner::new(TunerConfig { min_rounds: 4, max_rounds: 3 }).is_err());
        let mut t = SyntheticTimer::new(0, 0.0, |_| 1);
        assert!(Tuner::default().tune(&ProgramKey::new(b"p", &[]), &[], &mut t).is_err());
    }

    #[test]
    fn duplicates_are_measured_once_per_round() {
        let mut t = SyntheticTimer::new(0, 0.0, seed_cost);
        let out = Tuner::default().tune(&ProgramKey::new(b"p", &[]), &[[128, 1, 1], [128, 1, 1]], &mut t).unwrap();
        assert_eq!((out.candidates.len(), out.measurements), (1, 5));
        assert!(out.confident, "a single candidate is trivially the clear choice");
    }
}
