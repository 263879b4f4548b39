//! The start-up CPU boost (docs/architecture.md, "Start-up CPU boost"): a boosted sandbox's
//! cgroup is created without its CPU quota, and the quota applies at the first of
//!
//! * the supervisor saying the function's own code is about to run (`{"op":"throttle"}` on
//!   the control channel: fnbox serve sends it before it hands the handler to the runtime),
//! * the end of the boost window, whatever the sandbox does meanwhile: a sandbox cannot keep
//!   the boost by never saying it is ready.
//!
//! Memory and pids limits are never boosted. A `background` boost (pre-warmed sandboxes, which
//! no request waits for yet) also runs at the lowest CPU weight, so that it takes only CPU that
//! instances and cold starts do not want; its weight returns to the default with the quota.

use super::{Cgroup, Limits};
use crate::error::{Error, Result};
use std::time::{Duration, Instant};

/// The longest boost window `fnbox run --cpu-boost` accepts.
pub const MAX_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct CpuBoost {
    /// What applies once the boost ends.
    limits: Limits,
    deadline: Instant,
    on: bool,
    background: bool,
}

impl CpuBoost {
    /// A boost of `window` from `now` for a sandbox whose limits are `limits`.
    pub fn new(limits: &Limits, window: Duration, background: bool, now: Instant) -> Self {
        Self { limits: limits.clone(), deadline: now + window.min(MAX_WINDOW), on: true, background }
    }

    /// What the cgroup is created with: `limits` without the CPU quota.
    pub fn initial(&self) -> Limits {
        self.limits.boosted(self.background)
    }

    /// While boosted: when the quota applies anyway.
    pub fn deadline(&self) -> Option<Instant> {
        self.on.then_some(self.deadline)
    }

    pub fn active(&self) -> bool {
        self.on
    }

    /// Applies the quota now, and reads it back: `Ok` means the kernel holds the sandbox to
    /// it. Later calls do nothing. On an error the boost stays on (its caller ends the
    /// sandbox: a sandbox that could not be throttled never runs a function's code).
    pub fn end(&mut self, cg: &Cgroup) -> Result<()> {
        if !self.on {
            return Ok(());
        }
        cg.set_cpu(&self.limits)?;
        let want = self.limits.cpu_quota_us;
        match cg.cpu_quota_us() {
            Some(q) if q == want => {}
            got => {
                return Err(Error::Cgroup(format!(
                    "the CPU quota read back after the start-up boost is {got:?}, not {want} µs: the sandbox must not run unthrottled, stop it"
                )))
            }
        }
        self.on = false;
        Ok(())
    }

    /// A background boost's sandbox has been claimed (its supervisor attaches a function's
    /// code to it): a request waits for it now, so it runs at the normal weight from here,
    /// still without the quota until [`Self::end`]. Its first process mounts the code at
    /// the lowest weight otherwise, behind every busy sandbox on the host (up to 100 ms
    /// behind 20 cold starts at once on two cores). Does nothing on a foreground boost, after
    /// the boost, or twice.
    pub fn claim(&mut self, cg: &Cgroup) -> Result<()> {
        if !self.on || !self.background {
            return Ok(());
        }
        cg.set_cpu(&self.limits.boosted(false))?;
        self.background = false;
        Ok(())
    }

    /// Ends the boost if its window is over at `now`; true when it ended now.
    pub fn expire(&mut self, cg: &Cgroup, now: Instant) -> Result<bool> {
        if !self.on || now < self.deadline {
            return Ok(false);
        }
        self.end(cg).map(|()| true)
    }

    /// New limits for a live sandbox (`{"op":"limits"}`): what to write now. While boosted,
    /// the new quota is kept for the boost's end and the CPU stays unlimited.
    pub fn retarget(&mut self, limits: &Limits) -> Limits {
        self.limits = limits.clone();
        match self.on {
            true => limits.boosted(self.background),
            false => limits.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeTree;
    use super::super::{Cgroup, CgroupFs, Layout};
    use super::*;
    use crate::spec::Tier;
    use std::sync::Arc;

    fn tier(mb: u64) -> Limits {
        Limits::for_tier(Tier::for_mb(mb).unwrap(), 64)
    }

    /// Both hierarchies, each with the file that holds the quota and how "none" reads there.
    fn hosts() -> Vec<(Arc<FakeTree>, Layout, &'static str, &'static str)> {
        let v2 = FakeTree::new("/cg", "cpu memory pids");
        let (v1, v1_layout) = FakeTree::v1_each("/cg1", &["memory", "cpu", "pids"]);
        vec![
            (v2, Layout::V2 { root: "/cg".into() }, "/cg/fnbox/sb/cpu.max", "max 100000"),
            (v1, v1_layout, "/cg1/cpu/fnbox/sb/cpu.cfs_quota_us", "-1"),
        ]
    }

    #[test]
    fn a_boosted_cgroup_has_no_quota_until_the_boost_ends_then_the_tiers() {
        for (fs, layout, quota_file, none) in hosts() {
            let now = Instant::now();
            let limits = tier(128);
            let mut boost = CpuBoost::new(&limits, Duration::from_secs(10), false, now);
            let cg = Cgroup::create(&layout, fs.clone(), "fnbox", "sb", &boost.initial()).unwrap();
            assert_eq!(fs.read(quota_file.as_ref()).unwrap(), none, "{layout:?}");
            assert_eq!(cg.cpu_quota_us(), Some(Limits::UNLIMITED));
            assert_eq!(boost.deadline(), Some(now + Duration::from_secs(10)));
            // Memory is never boosted.
            assert!(cg.dirs().iter().any(|d| fs
                .read(&d.join("memory.limit_in_bytes"))
                .or_else(|_| fs.read(&d.join("memory.max")))
                .is_ok_and(|v| v == (128u64 << 20).to_string())));
            boost.end(&cg).unwrap();
            assert_eq!(cg.cpu_quota_us(), Some(7000), "{layout:?}");
            assert!(!boost.active());
            assert_eq!(boost.deadline(), None);
            // Ending twice changes nothing (a limits change in between is kept).
            cg.set_cpu(&tier(256)).unwrap();
            boost.end(&cg).unwrap();
            assert_eq!(cg.cpu_quota_us(), Some(14_000));
        }
    }

    #[test]
    fn the_quota_applies_when_the_window_ends_whatever_the_sandbox_does() {
        for (fs, layout, _, _) in hosts() {
            let now = Instant::now();
            let mut boost = CpuBoost::new(&tier(256), Duration::from_secs(5), false, now);
            let cg = Cgroup::create(&layout, fs, "fnbox", "sb", &boost.initial()).unwrap();
            assert!(!boost.expire(&cg, now + Duration::from_secs(4)).unwrap());
            assert_eq!(cg.cpu_quota_us(), Some(Limits::UNLIMITED));
            assert!(boost.expire(&cg, now + Duration::from_secs(5)).unwrap());
            assert_eq!(cg.cpu_quota_us(), Some(14_000), "{layout:?}");
            assert!(!boost.expire(&cg, now + Duration::from_secs(6)).unwrap());
        }
    }

    #[test]
    fn a_tier_change_while_boosted_waits_for_the_boost_to_end() {
        let mut boost = CpuBoost::new(&tier(128), Duration::from_secs(5), false, Instant::now());
        let now = boost.retarget(&tier(1024));
        assert_eq!(now.cpu_quota_us, Limits::UNLIMITED);
        assert_eq!(now.memory_bytes, 1024 << 20);
        let (fs, layout) = FakeTree::v1_each("/cg1", &["memory", "cpu", "pids"]);
        let cg = Cgroup::create(&layout, fs, "fnbox", "sb", &now).unwrap();
        boost.end(&cg).unwrap();
        assert_eq!(cg.cpu_quota_us(), Some(56_000));
        assert_eq!(boost.retarget(&tier(128)).cpu_quota_us, 7000);
    }

    /// A host whose quota files take writes and keep the old value (an unthrottled sandbox
    /// if nobody checked).
    struct DeafQuota(Arc<FakeTree>);

    impl CgroupFs for DeafQuota {
        fn read(&self, path: &std::path::Path) -> std::io::Result<String> {
            self.0.read(path)
        }
        fn write(&self, path: &std::path::Path, value: &str) -> std::io::Result<()> {
            match path.file_name().and_then(|n| n.to_str()) {
                Some("cpu.cfs_quota_us" | "cpu.max") if self.0.read(path).is_ok() => Ok(()),
                _ => self.0.write(path, value),
            }
        }
        fn mkdir(&self, path: &std::path::Path) -> std::io::Result<()> {
            self.0.mkdir(path)
        }
        fn rmdir(&self, path: &std::path::Path) -> std::io::Result<()> {
            self.0.rmdir(path)
        }
        fn exists(&self, path: &std::path::Path) -> bool {
            self.0.exists(path)
        }
    }

    #[test]
    fn a_quota_that_does_not_hold_is_an_error_and_the_boost_stays_on() {
        for (fs, layout, _, _) in hosts() {
            let mut boost = CpuBoost::new(&tier(128), Duration::from_secs(5), false, Instant::now());
            let cg = Cgroup::create(&layout, fs.clone(), "fnbox", "sb", &boost.initial()).unwrap();
            let deaf = Cgroup::create(&layout, Arc::new(DeafQuota(fs.clone())), "fnbox", "deaf", &boost.initial());
            let e = boost.end(&deaf.unwrap()).unwrap_err().to_string();
            assert!(e.contains("not 7000") && e.contains("stop it"), "{layout:?}: {e}");
            assert!(boost.active(), "{layout:?}");
            // Where the quota holds, it ends.
            boost.end(&cg).unwrap();
            assert!(!boost.active());
        }
    }

    #[test]
    fn the_window_is_bounded() {
        let now = Instant::now();
        let boost = CpuBoost::new(&tier(128), Duration::from_secs(3600), false, now);
        assert_eq!(boost.deadline(), Some(now + MAX_WINDOW));
    }

    /// A host, the file that holds sandbox `sb`'s CPU weight, its lowest value and its default.
    type WeightHost = (Arc<dyn CgroupFs>, Layout, &'static str, &'static str, &'static str);

    /// Both hierarchies, as [`WeightHost`]s.
    fn weight_hosts() -> Vec<WeightHost> {
        let (v1, v1_layout) = FakeTree::v1_each("/cg1", &["memory", "cpu", "pids"]);
        let v2 = FakeTree::new("/cg", "cpu memory pids");
        vec![
            (v1, v1_layout, "/cg1/cpu/fnbox/sb/cpu.shares", "2", "1024"),
            (v2, Layout::V2 { root: "/cg".into() }, "/cg/fnbox/sb/cpu.weight", "1", "100"),
        ]
    }

    #[test]
    fn a_background_boost_runs_at_the_lowest_weight_until_it_ends() {
        for (fs, layout, weight, idle, default) in weight_hosts() {
            let mut boost = CpuBoost::new(&tier(128), Duration::from_secs(5), true, Instant::now());
            let cg = Cgroup::create(&layout, fs.clone(), "fnbox", "sb", &boost.initial()).unwrap();
            assert_eq!(fs.read(weight.as_ref()).unwrap(), idle, "{layout:?}");
            assert_eq!(cg.cpu_quota_us(), Some(Limits::UNLIMITED));
            boost.end(&cg).unwrap();
            assert_eq!(fs.read(weight.as_ref()).unwrap(), default, "{layout:?}");
            assert_eq!(cg.cpu_quota_us(), Some(7000));
        }
    }

    // Catches: a claimed pre-warmed sandbox left at the lowest weight (its code's mount then
    // waits behind every busy sandbox), a claim that applies the quota before the platform's
    // start-up is done, and a claim of a foreground boost that touches the cgroup.
    #[test]
    fn a_claim_restores_the_weight_and_keeps_the_quota_off_until_the_end() {
        for (fs, layout, weight, idle, default) in weight_hosts() {
            let mut boost = CpuBoost::new(&tier(128), Duration::from_secs(5), true, Instant::now());
            let cg = Cgroup::create(&layout, fs.clone(), "fnbox", "sb", &boost.initial()).unwrap();
            assert_eq!(fs.read(weight.as_ref()).unwrap(), idle, "{layout:?}");
            boost.claim(&cg).unwrap();
            assert_eq!(fs.read(weight.as_ref()).unwrap(), default, "{layout:?}");
            assert_eq!(cg.cpu_quota_us(), Some(Limits::UNLIMITED), "{layout:?}: the claim is still boosted");
            assert!(boost.active());
            // Limits changed after the claim keep the normal weight while boosted.
            assert_eq!(boost.retarget(&tier(256)).cpu_shares, None, "{layout:?}");
            boost.end(&cg).unwrap();
            assert_eq!(cg.cpu_quota_us(), Some(14000), "{layout:?}");
            // A foreground boost's claim writes nothing.
            let mut fg = CpuBoost::new(&tier(128), Duration::from_secs(5), false, Instant::now());
            let cg2 = Cgroup::create(&layout, fs.clone(), "fnbox", "fg", &fg.initial()).unwrap();
            let w2 = weight.replace("/sb/", "/fg/");
            fs.write(w2.as_ref(), "7").unwrap();
            fg.claim(&cg2).unwrap();
            assert_eq!(fs.read(w2.as_ref()).unwrap(), "7", "{layout:?}");
        }
    }
}
