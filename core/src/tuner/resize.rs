//! Resizing a workgroup from live feedback, with hysteresis.
//!
//! The seed's rule (`vyre-driver` `DefaultPolicy::suggest_resize`), applied
//! to each feedback window on its own:
//!
//! * idle time in the window above `idle_shrink_us` → halve the size (not
//!   below the floor): the device waits on something, smaller groups spread
//!   the work over more cores;
//! * otherwise, throughput below `saturation_threshold_per_us` → double it
//!   (not above the adapter maximum): the device is not saturated.
//!
//! Applied window by window, one noisy window was enough to resize, and
//! noise around a threshold made the size flap. [`Resizer`] keeps the rule
//! but adds two guards:
//!
//! 1. **Dead band.** A window votes to shrink only when idle time exceeds the
//!    threshold by more than `dead_band` (a fraction), and to grow only when
//!    throughput falls short of it by more than `dead_band`. Anything in
//!    between votes to hold.
//! 2. **Streak.** The size moves only after `streak` consecutive windows
//!    vote the same way. A hold, or a vote the other way, restarts the count;
//!    after a move the count restarts too, and windows still measured on the
//!    old size (their `workgroup_size_x` differs) are ignored.
//!
//! So alternating noise, however large, never moves the size (with
//! `streak >= 2`), and a sustained change moves it after exactly `streak`
//! windows. What hysteresis cannot fix: thresholds that contradict each other
//! (the size at `x` reads unsaturated, at `2x` idle) make a slow cycle of
//! period `2 * streak` windows; that is a mis-set threshold, not noise.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The thresholds and bounds of the resize rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResizePolicy {
    /// Never shrink below this size.
    pub min_size_x: u32,
    /// Never grow above this size (the adapter's limit).
    pub max_size_x: u32,
    /// Throughput (work items per microsecond) below which the device counts
    /// as unsaturated.
    pub saturation_threshold_per_us: f64,
    /// Idle microseconds per window above which the device counts as idle.
    pub idle_shrink_us: u64,
    /// Fraction of a threshold a window must clear to vote (0 = none).
    pub dead_band: f64,
    /// Consecutive agreeing windows needed to move.
    pub streak: u32,
}

impl Default for ResizePolicy {
    /// The seed's thresholds (32..=1024, 1 item/µs, 100 ms idle), a 10% dead
    /// band and a streak of 3.
    fn default() -> Self {
        ResizePolicy {
            min_size_x: 32,
            max_size_x: 1024,
            saturation_threshold_per_us: 1.0,
            idle_shrink_us: 100_000,
            dead_band: 0.1,
            streak: 3,
        }
    }
}

impl ResizePolicy {
    /// Checks the policy is usable.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::config(format!("resize policy: {what}")));
        if self.min_size_x == 0 || self.min_size_x > self.max_size_x {
            return bad("need 1 <= min_size_x <= max_size_x");
        }
        if self.streak == 0 {
            return bad("streak must be at least 1");
        }
        if !(0.0..1.0).contains(&self.dead_band) {
            return bad("dead_band must be in [0, 1)");
        }
        if !(self.saturation_threshold_per_us.is_finite() && self.saturation_threshold_per_us >= 0.0) {
            return bad("saturation_threshold_per_us must be a finite number >= 0");
        }
        Ok(())
    }

    fn vote(&self, fb: &ResizeFeedback) -> Option<Direction> {
        let idle_limit = self.idle_shrink_us as f64;
        let idle = fb.idle_us as f64;
        if idle > idle_limit * (1.0 + self.dead_band) {
            Some(Direction::Shrink)
        } else if idle <= idle_limit
            // NaN throughput compares false: no vote.
            && fb.throughput_per_us < self.saturation_threshold_per_us * (1.0 - self.dead_band)
        {
            Some(Direction::Grow)
        } else {
            None
        }
    }
}

/// What one feedback window observed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResizeFeedback {
    /// The workgroup size x the window ran with.
    pub workgroup_size_x: u32,
    /// Idle microseconds inside the window.
    pub idle_us: u64,
    /// Work items completed per microsecond.
    pub throughput_per_us: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Grow,
    Shrink,
}

/// The resize rule with its memory (the current size and the streak).
#[derive(Debug, Clone)]
pub struct Resizer {
    policy: ResizePolicy,
    current_x: u32,
    pending: Option<Direction>,
    count: u32,
}

impl Resizer {
    /// A resizer starting at `initial_x`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an invalid policy or an `initial_x`
    /// outside `min_size_x..=max_size_x`.
    pub fn new(policy: ResizePolicy, initial_x: u32) -> Result<Self> {
        policy.validate()?;
        if !(policy.min_size_x..=policy.max_size_x).contains(&initial_x) {
            return Err(Error::config(format!(
                "resize policy: initial size {initial_x} is outside {}..={}",
                policy.min_size_x, policy.max_size_x
            )));
        }
        Ok(Resizer { policy, current_x: initial_x, pending: None, count: 0 })
    }

    /// The size the next dispatches should use.
    pub fn current_x(&self) -> u32 {
        self.current_x
    }

    /// The policy in force.
    pub fn policy(&self) -> &ResizePolicy {
        &self.policy
    }

    /// Feeds one window; returns the new size when this window completes a
    /// streak and the size can move (it is not already at the bound).
    pub fn observe(&mut self, feedback: &ResizeFeedback) -> Option<u32> {
        if feedback.workgroup_size_x != self.current_x {
            return None;
        }
        let Some(dir) = self.policy.vote(feedback) else {
            self.pending = None;
            self.count = 0;
            return None;
        };
        if self.pending == Some(dir) {
            self.count += 1;
        } else {
            self.pending = Some(dir);
            self.count = 1;
        }
        if self.count < self.policy.streak {
            return None;
        }
        self.pending = None;
        self.count = 0;
        let p = &self.policy;
        let target = match dir {
            Direction::Grow => self.current_x.saturating_mul(2).min(p.max_size_x),
            Direction::Shrink => (self.current_x / 2).max(p.min_size_x),
        };
        (target != self.current_x).then(|| {
            self.current_x = target;
            target
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fb(x: u32, idle_us: u64, throughput_per_us: f64) -> ResizeFeedback {
        ResizeFeedback { workgroup_size_x: x, idle_us, throughput_per_us }
    }

    #[test]
    fn seed_rule_with_streak_one_and_no_dead_band() {
        let p = ResizePolicy { streak: 1, dead_band: 0.0, ..ResizePolicy::default() };
        let mut r = Resizer::new(p, 256).unwrap();
        assert_eq!(r.observe(&fb(256, 200_000, 5.0)), Some(128), "idle shrinks");
        assert_eq!(r.observe(&fb(128, 0, 0.5)), Some(256), "unsaturated grows");
        assert_eq!(r.observe(&fb(256, 0, 5.0)), None, "busy and saturated holds");
        let mut r = Resizer::new(p, 32).unwrap();
        assert_eq!(r.observe(&fb(32, 200_000, 0.5)), None, "idle at the floor: no grow either");
    }

    #[test]
    fn bounds_clamp() {
        let p = ResizePolicy { streak: 1, min_size_x: 48, max_size_x: 96, ..ResizePolicy::default() };
        let mut r = Resizer::new(p, 64).unwrap();
        assert_eq!(r.observe(&fb(64, 0, 0.0)), Some(96));
        assert_eq!(r.observe(&fb(96, 0, 0.0)), None);
        assert_eq!(r.observe(&fb(96, u64::MAX, 0.0)), Some(48));
        assert_eq!(r.observe(&fb(48, u64::MAX, 0.0)), None);
    }

    #[test]
    fn invalid_policies() {
        let d = ResizePolicy::default();
        for p in [
            ResizePolicy { min_size_x: 0, ..d },
            ResizePolicy { min_size_x: 2048, ..d },
            ResizePolicy { streak: 0, ..d },
            ResizePolicy { dead_band: 1.0, ..d },
            ResizePolicy { dead_band: f64::NAN, ..d },
            ResizePolicy { saturation_threshold_per_us: f64::INFINITY, ..d },
        ] {
            assert!(Resizer::new(p, 64).is_err(), "{p:?}");
        }
        assert!(Resizer::new(d, 2048).is_err());
    }

    #[test]
    fn nan_throughput_holds() {
        let mut r = Resizer::new(ResizePolicy { streak: 1, ..ResizePolicy::default() }, 64).unwrap();
        assert_eq!(r.observe(&fb(64, 0, f64::NAN)), None);
    }
}
