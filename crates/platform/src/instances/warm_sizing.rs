//! How big a warm pool's shelf is (docs/architecture.md, "Cold starts in bursts"): the average
//! rate of its cold starts, their recent peak within a second, and each function's fair share
//! of them. See `warm.rs` for the pool itself.

use super::warm::WarmConfig;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Time constant of the cold-start rate estimate.
pub const RATE_TAU: Duration = Duration::from_secs(60);
/// A shelf holds the cold starts expected within this long.
pub const HORIZON: Duration = Duration::from_secs(10);
/// The window of a shelf's peak of cold starts per second.
pub const PEAK_WINDOW: Duration = Duration::from_secs(60);
/// The window of a function's fair share: within it, only `--warm-per-function` of one
/// function's cold starts count toward a shelf's size (and take from a shelf it shares). As long as the horizon: one function's cold starts, at any rate, ask the
/// shelf for at most its share.
pub const FAIR_WINDOW: Duration = HORIZON;

/// Events per second, decaying exponentially between events.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rate {
    per_s: f64,
    at: Option<Instant>,
}

impl Rate {
    pub fn at(&self, now: Instant) -> f64 {
        match self.at {
            Some(t) => self.per_s * (-now.saturating_duration_since(t).as_secs_f64() / RATE_TAU.as_secs_f64()).exp(),
            None => 0.0,
        }
    }

    pub fn record(&mut self, now: Instant) {
        self.per_s = self.at(now) + 1.0 / RATE_TAU.as_secs_f64();
        self.at = Some(now);
    }
}

/// The most events within any one second (a sliding window) over the last [`PEAK_WINDOW`].
#[derive(Clone, Debug, Default)]
pub struct Peak {
    /// When the events of the window happened, oldest first; at most [`PEAK_EVENTS`].
    at: VecDeque<Instant>,
}

/// Events a shelf's peak remembers: more than any shelf holds (`--warm-max` is at most 256).
const PEAK_EVENTS: usize = 1024;

impl Peak {
    pub fn record(&mut self, now: Instant) {
        self.forget(now);
        if self.at.len() == PEAK_EVENTS {
            self.at.pop_front();
        }
        self.at.push_back(now);
    }

    fn forget(&mut self, now: Instant) {
        while self.at.front().is_some_and(|t| now.saturating_duration_since(*t) >= PEAK_WINDOW) {
            self.at.pop_front();
        }
    }

    pub fn at(&mut self, now: Instant) -> u32 {
        self.forget(now);
        // For each event, the events in the second that ends with it.
        let (mut most, mut first) = (0, 0);
        for (i, t) in self.at.iter().enumerate() {
            while t.saturating_duration_since(self.at[first]) >= Duration::from_secs(1) {
                first += 1;
            }
            most = most.max(i + 1 - first);
        }
        most as u32
    }
}

/// Each function's cold starts that counted on a shelf within the last [`FAIR_WINDOW`]: one
/// function's burst grows the shelf by at most its share, whatever its rate, and on a shelf
/// other functions use takes at most that many of its sandboxes, so that it cannot empty the
/// pool (or fill the memory budget) that other functions' cold starts need.
#[derive(Debug, Default)]
pub struct FairShare {
    /// Per function name: when its counted cold starts happened, oldest first (at most the
    /// share: a function over it records nothing).
    counted: HashMap<String, VecDeque<Instant>>,
}

impl FairShare {
    /// Whether a cold start of `function` at `now` is within its share of `share` per
    /// [`FAIR_WINDOW`]; if it is, it is counted.
    pub fn admit(&mut self, function: &str, share: u32, now: Instant) -> bool {
        self.forget(now);
        let counted = self.counted.entry(function.to_string()).or_default();
        if counted.len() >= share as usize {
            return false;
        }
        counted.push_back(now);
        true
    }

    /// Drops what left the window, and functions with nothing left in it.
    fn forget(&mut self, now: Instant) {
        self.counted.retain(|_, at| {
            while at.front().is_some_and(|t| now.saturating_duration_since(*t) >= FAIR_WINDOW) {
                at.pop_front();
            }
            !at.is_empty()
        });
    }
}

/// What a shelf in use holds at `rate` cold starts per second, a recent peak of `peak` within
/// a second and `fresh` functions still to have their first cold start: the largest of the
/// three, between `min` and `max`.
pub fn sized(rate: f64, peak: u32, fresh: u32, c: &WarmConfig) -> u32 {
    let expected = (rate * HORIZON.as_secs_f64()).ceil() as u32;
    expected.max(peak).max(fresh).max(c.min).min(c.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_grows_with_events_and_decays_without() {
        let t0 = Instant::now();
        let mut r = Rate::default();
        assert_eq!(r.at(t0), 0.0);
        for i in 0..60 {
            r.record(t0 + Duration::from_secs(i));
        }
        // One a second for a minute: most of the way to 1/s.
        let now = t0 + Duration::from_secs(60);
        assert!((0.55..0.7).contains(&r.at(now)), "{}", r.at(now));
        let later = now + RATE_TAU * 3;
        assert!(r.at(later) < 0.05 * r.at(now));
    }

    #[test]
    fn a_shelf_holds_the_cold_starts_expected_within_its_bounds() {
        let c = WarmConfig { min: 1, max: 8, memory_budget: 0, parallel: 2, per_function: 4 };
        assert_eq!(sized(0.0, 0, 0, &c), 1, "kept at min with no cold starts");
        assert_eq!(sized(0.15, 0, 0, &c), 2, "1.5 expected within 10 s");
        assert_eq!(sized(0.5, 0, 0, &c), 5);
        assert_eq!(sized(30.0, 0, 0, &c), 8, "capped at max");
        assert_eq!(sized(0.5, 0, 0, &WarmConfig { min: 0, max: 0, memory_budget: 0, parallel: 2, per_function: 4 }), 0);
    }

    #[test]
    fn a_burst_sizes_the_shelf_by_its_peak_and_new_functions_by_their_count() {
        let c = WarmConfig { min: 1, max: 32, memory_budget: 0, parallel: 2, per_function: 4 };
        // 20 cold starts in one second: a rate of 0.33/s asks for 4, the peak for 20.
        let t0 = Instant::now();
        let (mut rate, mut peak) = (Rate::default(), Peak::default());
        for i in 0..20 {
            let t = t0 + Duration::from_millis(i * 40);
            rate.record(t);
            peak.record(t);
        }
        let now = t0 + Duration::from_secs(2);
        assert_eq!(sized(rate.at(now), 0, 0, &c), 4);
        assert_eq!(peak.at(now), 20);
        assert_eq!(sized(rate.at(now), peak.at(now), 0, &c), 20);
        // The peak is forgotten after its window; the average decays more slowly.
        let later = t0 + PEAK_WINDOW + Duration::from_secs(1);
        assert_eq!(peak.at(later), 0);
        assert_eq!(sized(rate.at(later), peak.at(later), 0, &c), 2);
        // 12 functions deployed and not called yet: 12.
        assert_eq!(sized(0.0, 0, 12, &c), 12);
        assert_eq!(sized(0.0, 0, 50, &c), 32, "capped at max");
    }

    #[test]
    fn the_peak_counts_within_one_second() {
        let t0 = Instant::now();
        let mut p = Peak::default();
        for i in 0..10 {
            p.record(t0 + Duration::from_millis(i * 300)); // ~3.3 a second
        }
        assert_eq!(p.at(t0 + Duration::from_secs(3)), 4);
        // A burst across a second's boundary counts whole.
        let mut p = Peak::default();
        for i in 0..20 {
            p.record(t0 + Duration::from_millis(700 + i * 30));
        }
        assert_eq!(p.at(t0 + Duration::from_secs(2)), 20);
    }

    #[test]
    fn one_functions_burst_counts_up_to_its_share_and_others_keep_theirs() {
        let t0 = Instant::now();
        let mut fair = FairShare::default();
        // 20 cold starts of one function within a second: 4 count, the rest do not.
        let counted = (0..20).filter(|i| fair.admit("greedy", 4, t0 + Duration::from_millis(i * 10))).count();
        assert_eq!(counted, 4);
        // Another function's are its own.
        let t1 = t0 + Duration::from_millis(500);
        assert!((0..4).all(|i| fair.admit(&format!("f{i}"), 4, t1)));
        assert!(fair.admit("other", 4, t1));
        // Its share comes back as its counted cold starts leave the window.
        assert!(!fair.admit("greedy", 4, t0 + FAIR_WINDOW - Duration::from_millis(1)));
        assert!(fair.admit("greedy", 4, t0 + FAIR_WINDOW));
        // Functions with nothing in the window are forgotten.
        fair.forget(t1 + FAIR_WINDOW * 2);
        assert!(fair.counted.is_empty());
    }

    #[test]
    fn a_burst_of_one_function_grows_the_shelf_by_its_share_only() {
        let c = WarmConfig { min: 1, max: 32, memory_budget: 0, parallel: 2, per_function: 4 };
        let t0 = Instant::now();
        let (mut rate, mut peak, mut fair) = (Rate::default(), Peak::default(), FairShare::default());
        // 100 cold starts of one function within a second, then one of it every 100 ms for a
        // minute: what counts is 4 per 10 s.
        for i in 0..700u64 {
            let t = t0 + Duration::from_millis(if i < 100 { i * 10 } else { 1000 + (i - 100) * 100 });
            if fair.admit("greedy", c.per_function, t) {
                rate.record(t);
                peak.record(t);
            }
        }
        let now = t0 + Duration::from_secs(61);
        assert_eq!(peak.at(now), 4);
        assert!(sized(rate.at(now), peak.at(now), 0, &c) <= 4, "{}", sized(rate.at(now), peak.at(now), 0, &c));
    }
}
