//! The disk budget of the sandboxes' writable layers (docs/architecture.md, "Disk budget"):
//! what all sandboxes together, and each function's, may hold. A leaf: the launcher takes a
//! share before it starts a sandbox, the backend and the warm pool charge it to its owner.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The size of a sandbox's writable layer (`fnbox run`'s default `--disk`), as the disk
/// budget counts it: whole, whatever of it is written yet.
pub const LAYER_BYTES: u64 = fnbox_sandbox::spec::DEFAULT_DISK_MB << 20;

/// The disk that the writable layers of all sandboxes (instances and pre-warmed ones) may
/// take together (docs/architecture.md, "Disk budget"). Each layer is a sparse file that
/// its sandbox may fill: counted whole, the budget is a bound that no function can pass.
/// A layer's share is held until its sandbox's launcher has exited (the layer is gone), not
/// until fnbox stops using the sandbox: a stopped sandbox still holds its layer until it ends.
/// One function holds at most [`DiskBudget::function_cap`] of it.
pub struct DiskBudget {
    total: u64,
    used: AtomicU64,
    /// Bytes held by the sandboxes of each function (those handed to it).
    functions: Mutex<HashMap<String, u64>>,
}

/// One layer's part of the budget, given back when its sandbox has ended and nothing holds
/// its handle (the launcher's `Launched`) any more (both keep an `Arc` of it).
pub struct DiskShare {
    budget: Arc<DiskBudget>,
    bytes: u64,
    function: Mutex<Option<String>>,
}

impl DiskBudget {
    pub fn new(total: u64) -> Arc<Self> {
        Arc::new(Self { total, used: AtomicU64::new(0), functions: Mutex::new(HashMap::new()) })
    }

    /// `bytes` of the budget, or the reason there is no room.
    pub fn take(self: &Arc<Self>, bytes: u64) -> Result<DiskShare, String> {
        let took = self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
            u.checked_add(bytes).filter(|&after| after <= self.total)
        });
        match took {
            Ok(_) => Ok(DiskShare { budget: self.clone(), bytes, function: Mutex::new(None) }),
            Err(used) => Err(format!(
                "no sandbox can start: the server's disk budget for writable layers is used up ({} sandboxes hold {} of its {} MiB, each layer counted whole; fnbox serve --instance-disk): wait for instances to stop, or raise it",
                used / bytes.max(1),
                used >> 20,
                self.total >> 20
            )),
        }
    }

    /// The most one function's sandboxes may hold: its `max_scale` layers, and at most half
    /// of the server's budget (one layer at least), so that one function's burst or
    /// `--min-scale` leaves room for the others.
    pub fn function_cap(&self, max_scale: u32) -> u64 {
        let half = (self.total / 2).max(LAYER_BYTES) / LAYER_BYTES * LAYER_BYTES;
        (u64::from(max_scale) * LAYER_BYTES).min(half)
    }

    /// Whether `function` may get one more layer now (checked before a launch; the charge
    /// itself is [`DiskShare::assign`]).
    pub fn function_room(&self, function: &str, max_scale: u32) -> Result<(), String> {
        let held = self.functions.lock().unwrap_or_else(|p| p.into_inner()).get(function).copied().unwrap_or(0);
        self.function_fits(function, held, max_scale)
    }

    fn function_fits(&self, function: &str, held: u64, max_scale: u32) -> Result<(), String> {
        let cap = self.function_cap(max_scale);
        match held + LAYER_BYTES <= cap {
            true => Ok(()),
            false => Err(format!(
                "no sandbox can start for {function}: its instances hold {} MiB of disk, its share of the server's budget for writable layers (at most its max-scale layers and half of fnbox serve --instance-disk, {} MiB): wait for its instances to stop",
                held >> 20,
                cap >> 20
            )),
        }
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

/// The owner the warm pool's spares are charged to: like a function, they hold at most half
/// of the disk budget, so that spares never leave no room for deploy checks and instances.
pub const WARM_POOL: &str = "(pre-warmed sandboxes)";

impl DiskShare {
    /// Charges this layer to `function` (moving it from the owner it had, the warm pool's for
    /// a spare being handed over), within the function's share of the budget.
    pub fn assign(&self, function: &str, max_scale: u32) -> Result<(), String> {
        let mut mine = self.function.lock().unwrap_or_else(|p| p.into_inner());
        if mine.as_deref() == Some(function) {
            return Ok(());
        }
        let mut all = self.budget.functions.lock().unwrap_or_else(|p| p.into_inner());
        let held = all.get(function).copied().unwrap_or(0);
        self.budget.function_fits(function, held, max_scale)?;
        if let Some(before) = mine.take() {
            release(&mut all, &before, self.bytes);
        }
        all.insert(function.to_string(), held + self.bytes);
        *mine = Some(function.to_string());
        Ok(())
    }
}

/// Takes `bytes` off what `owner` holds.
fn release(all: &mut HashMap<String, u64>, owner: &str, bytes: u64) {
    if let Some(held) = all.get_mut(owner) {
        *held = held.saturating_sub(bytes);
        if *held == 0 {
            all.remove(owner);
        }
    }
}

impl Drop for DiskShare {
    fn drop(&mut self) {
        if let Some(f) = self.function.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            release(&mut self.budget.functions.lock().unwrap_or_else(|p| p.into_inner()), &f, self.bytes);
        }
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}
