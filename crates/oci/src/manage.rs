//! `ps`, `pause`, `resume` and `update`: acting on a live container's cgroup.

use crate::error::{Error, Result};
use crate::state::{Record, StateDir, Status};
use crate::{config, convert, Globals};
use fnbox_sandbox::cgroup::{Cgroup, Limits};

fn live(g: &Globals, id: &str) -> Result<(StateDir, Record, Cgroup)> {
    let dir = StateDir::open(&g.root, id)?;
    let r = dir.read()?;
    let status = r.status();
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(Error::NotRunning { id: id.into(), status: status.as_str().into() });
    }
    let cg = r.cgroup().ok_or_else(|| Error::Usage("no cgroup hierarchy is mounted".into()))?;
    Ok((dir, r, cg))
}

/// `ps`: host pids of the container's processes.
pub fn ps(g: &Globals, id: &str) -> Result<Vec<i32>> {
    let dir = StateDir::open(&g.root, id)?;
    let r = dir.read()?;
    if r.status() == Status::Stopped {
        return Ok(Vec::new());
    }
    let mut pids: Vec<i32> = r.cgroup().map(|c| c.pids()).unwrap_or_default();
    // The Sentry serving them shares the container's cgroup but is not one of its processes.
    pids.retain(|p| Some(*p) != r.sentry_pid);
    pids.sort_unstable();
    Ok(pids)
}

/// `pause`: freezes every process of the container.
pub fn pause(g: &Globals, id: &str) -> Result<()> {
    let (_, _, cg) = live(g, id)?;
    Ok(cg.freeze(true)?)
}

/// `resume`: thaws a paused container.
pub fn resume(g: &Globals, id: &str) -> Result<()> {
    let (_, _, cg) = live(g, id)?;
    Ok(cg.freeze(false)?)
}

/// `update --resources`: new memory, CPU and pids limits (OCI `LinuxResources` JSON); fields
/// left out keep their values.
pub fn update(g: &Globals, id: &str, resources_json: &str) -> Result<()> {
    let given: config::Resources = serde_json::from_str(resources_json)
        .map_err(|e| Error::Usage(format!("the resources are not valid OCI LinuxResources JSON: {e}")))?;
    let (dir, r, cg) = live(g, id)?;
    let new = convert::resources(Some(&given))?;
    let mut res = r.spec.container.as_ref().map(|c| c.resources.clone()).unwrap_or_default();
    if given.memory.as_ref().and_then(|m| m.limit).is_some() {
        res.memory_bytes = new.memory_bytes;
    }
    if let Some(cpu) = &given.cpu {
        if cpu.quota.is_some() {
            res.cpu_quota_us = new.cpu_quota_us;
        }
        res.cpu_period_us = new.cpu_period_us.or(res.cpu_period_us);
        res.cpu_shares = new.cpu_shares.or(res.cpu_shares);
    }
    if given.pids.is_some() {
        res.pids_max = new.pids_max;
    }
    cg.update(&Limits::for_container(&res))?;
    dir.update(|rec| {
        if let Some(c) = rec.spec.container.as_mut() {
            c.resources = res;
        }
    })?;
    Ok(())
}
