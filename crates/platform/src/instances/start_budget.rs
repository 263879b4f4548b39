//! Each function's budget of boosted starts (docs/architecture.md, "Cold starts in bursts", the
//! boost's budget). A boosted start runs the platform's start-up work (the sandbox's set-up,
//! the interpreter's start, a pre-warmed sandbox and its refill) without the function's CPU
//! quota: without a bound, a function whose instances end after each response would have every
//! request start a sandbox at full speed, turning its calls into the platform's CPU beyond its
//! quota. The budget is a token bucket: a burst of [`BOOSTED_BURST`] starts, then one every
//! [`BOOST_REFILL`]; past it, a start runs under the function's quota from its first
//! instruction and takes no pre-warmed sandbox (which a boosted start made).

use std::time::{Duration, Instant};

/// Boosted starts a function may make at once: a deploy followed by a burst of cold starts up
/// to a max-scale of 20 is boosted all through.
pub const BOOSTED_BURST: u32 = 20;
/// Past the burst, one more boosted start every this long: an interpreter's start costs about
/// a tenth to a third of a CPU-second, so a function starting instances without end takes at
/// most a few hundredths of a CPU that way, less than the smallest tier's quota (0.07).
pub const BOOST_REFILL: Duration = Duration::from_secs(10);

/// A function's boosted starts left, refilled with time.
#[derive(Clone, Copy, Debug)]
pub struct BoostBudget {
    /// Starts left at `at` (fractions accrue between starts).
    left: f64,
    at: Option<Instant>,
}

impl Default for BoostBudget {
    fn default() -> Self {
        Self { left: f64::from(BOOSTED_BURST), at: None }
    }
}

impl BoostBudget {
    /// Starts left at `now`.
    pub fn left(&self, now: Instant) -> f64 {
        let refilled = match self.at {
            Some(at) => now.saturating_duration_since(at).as_secs_f64() / BOOST_REFILL.as_secs_f64(),
            None => 0.0,
        };
        (self.left + refilled).min(f64::from(BOOSTED_BURST))
    }

    /// Whether a start at `now` may be boosted; if so, it is taken from the budget. The
    /// refill is counted up to the latest `now` seen: a clock read out of order (another
    /// thread's earlier `now`) neither takes anything back nor moves the mark back, which
    /// would count the time since then a second time at the next start.
    pub fn take(&mut self, now: Instant) -> bool {
        let left = self.left(now);
        let boosted = left >= 1.0;
        self.left = if boosted { left - 1.0 } else { left };
        self.at = Some(self.at.map_or(now, |at| at.max(now)));
        boosted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Catches: an unbounded boost (a start loop boosted forever), a budget that never refills
    // (a function penalised for good after one burst), and one that refills past its burst.
    #[test]
    fn a_burst_is_boosted_then_one_start_per_refill_period() {
        let t0 = Instant::now();
        let mut b = BoostBudget::default();
        let boosted = (0..BOOSTED_BURST + 5).filter(|_| b.take(t0)).count() as u32;
        assert_eq!(boosted, BOOSTED_BURST);
        assert!(!b.take(t0 + BOOST_REFILL / 2), "half a period refills no start");
        assert!(b.take(t0 + BOOST_REFILL), "one period refills one start");
        assert!(!b.take(t0 + BOOST_REFILL));
        // Denied starts do not use up what accrues meanwhile.
        assert!(b.take(t0 + BOOST_REFILL * 2));
        // Idle for long: the burst again, never more.
        let later = t0 + BOOST_REFILL * 1000;
        assert_eq!(b.left(later), f64::from(BOOSTED_BURST));
        assert_eq!((0..BOOSTED_BURST * 2).filter(|_| b.take(later)).count() as u32, BOOSTED_BURST);
        // A clock read out of order (another thread's earlier `now`) takes nothing back.
        assert!(!b.take(t0));
    }

    // Catches: a refill counted twice. A start whose `now` was read before the last start's
    // moved the budget's mark back, so the time between the two was refilled again at the
    // next start: starts interleaved that way were all boosted past the budget.
    #[test]
    fn a_clock_read_out_of_order_refills_nothing_twice() {
        let t0 = Instant::now();
        let mut b = BoostBudget::default();
        assert_eq!((0..BOOSTED_BURST).filter(|_| b.take(t0)).count() as u32, BOOSTED_BURST);
        let t1 = t0 + BOOST_REFILL;
        assert!(b.take(t1), "one period refilled one start");
        assert!(!b.take(t0), "an earlier clock read refills nothing");
        assert!(!b.take(t1), "the period up to t1 was counted already");
        assert!(b.left(t1) < 1.0 && b.left(t1 + BOOST_REFILL) >= 1.0);
        // Idle time refills up to the burst, never past it, whatever the order of the reads.
        let later = t1 + BOOST_REFILL * 100;
        assert!(b.take(later) && b.take(t1), "a full budget, out of order or not");
        assert_eq!(b.left(later), f64::from(BOOSTED_BURST) - 2.0, "the idle time was refilled again");
    }
}
