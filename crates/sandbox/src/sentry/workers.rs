//! The threads that receive and answer the program's calls (docs/architecture.md, "The Sentry's
//! workers").
//!
//! One worker receives every call while calls come one at a time: the same thread, woken on
//! the caller's CPU, gives the shortest round trip, and a second thread waiting on the same
//! listener would cost every call more (the kernel wakes every waiter of the listener, on the
//! caller's CPU, and all but one go back to sleep). When calls queue up (several threads of
//! the program calling at once: `git status` stats its files from 20 threads), the worker
//! calls in its helpers, parked until then; a helper answers calls while one is waiting and
//! parks again when none is. So a program's threads are served in parallel, up to the CPUs
//! the Sentry may use, and a single-threaded program pays one `poll` every few calls for it.

use super::notify::Listener;
use super::{Sentry, PROFILE};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// The most helpers a Sentry starts, whatever the CPUs.
const MAX_HELPERS: usize = 3;
/// The worker looks for calls queued behind the one it received every this many calls.
const SPILL_CHECK_EVERY: u32 = 4;

/// Where the helpers park: `called` is set by the worker when calls queue up.
#[derive(Default)]
pub(super) struct Spill {
    called: Mutex<bool>,
    wake: Condvar,
}

impl Spill {
    fn call_in(&self) {
        let mut called = self.called.lock().unwrap_or_else(|e| e.into_inner());
        if !*called {
            *called = true;
            self.wake.notify_all();
        }
    }

    fn wait(&self) {
        let mut called = self.called.lock().unwrap_or_else(|e| e.into_inner());
        while !*called {
            called = self.wake.wait(called).unwrap_or_else(|e| e.into_inner());
        }
        *called = false;
    }
}

/// How many helpers: one fewer than the CPUs this process may run on, at most [`MAX_HELPERS`].
pub(super) fn helpers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_HELPERS + 1) - 1
}

impl Sentry {
    /// Starts `n` helpers for the program's listener, parked until the worker calls them in.
    pub(super) fn start_helpers(self: &Arc<Self>, n: usize) {
        for _ in 0..n {
            let me = Arc::clone(self);
            let listener = Arc::clone(&self.listener);
            let spawned =
                std::thread::Builder::new().name("sentry-help".into()).stack_size(256 << 10).spawn(move || {
                    loop {
                        me.spill.wait();
                        // Answer while a call waits; a call taken by the worker in between
                        // leaves this one waiting in `recv` for the next, which it answers.
                        while listener.pending() {
                            match listener.recv() {
                                Ok(Some(call)) => me.answer(&listener, call),
                                _ => return,
                            }
                        }
                    }
                });
            if let Err(e) = spawned {
                // Calls are still answered, one at a time.
                eprintln!("fnbox: sentry: cannot start a helper thread: {e}");
                return;
            }
        }
    }

    /// Receives and answers `listener`'s calls until every task using it is gone; with
    /// `spill`, calls in the helpers whenever another call waits behind the one received.
    pub(super) fn work(self: Arc<Self>, listener: Arc<Listener>, spill: bool) {
        let mut n = 0u32;
        while let Ok(Some(call)) = listener.recv() {
            // Looked at every few calls, not every one: a queue that lasts is found as well,
            // and a single-threaded program pays a quarter of a `poll` per call.
            n = n.wrapping_add(1);
            if spill && n.is_multiple_of(SPILL_CHECK_EVERY) && listener.pending() {
                self.spill.call_in();
            }
            self.answer(&listener, call);
        }
    }

    fn answer(&self, listener: &Listener, call: super::notify::Call) {
        if !PROFILE.load(Ordering::Relaxed) {
            let reply = self.handle(&call);
            listener.respond(call.id, reply);
            return;
        }
        let t0 = Instant::now();
        let reply = self.handle(&call);
        let t1 = Instant::now();
        listener.respond(call.id, reply);
        {
            let mut p = self.profile.lock().unwrap_or_else(|e| e.into_inner());
            let e = p.entry(call.nr as u32).or_insert((0, 0, 0));
            e.0 += 1;
            e.1 += (t1 - t0).as_nanos() as u64;
            e.2 += t1.elapsed().as_nanos() as u64;
        }
    }
}
