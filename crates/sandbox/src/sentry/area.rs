//! The Sentry's in-memory area: directories of the synthetic `/proc`, materialised on open so
//! that `getdents64`, `fstat` and `fchdir` on them run natively.
//!
//! The area is a private tmpfs, mounted nowhere (a detached mount), charged to the sandbox's
//! memory cgroup like everything the Sentry allocates. Its entries live under a random token
//! directory, so the Sentry can recognise its own directories when a program later uses one
//! as a `dirfd`.
//!
//! The Sentry writes the area through its own mount and hands programs descriptors opened
//! through a read-only clone of it (`view`): a program holding one, or whose working
//! directory is one, reaches nothing but read-only listings of its own sandbox's `/proc`,
//! whatever path the kernel resolves from there (see docs/architecture.md, "Continued calls").

use super::notify::{errno, SysResult};
use super::proc::Kind;
use crate::sys;
use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;

/// How many materialised directories are kept; older ones are removed (a program still
/// holding one reads it as empty).
const KEEP: usize = 256;

pub struct Area {
    /// The Sentry's own, writable mount.
    root: OwnedFd,
    /// A read-only clone of `root`: every descriptor handed to a program is opened through it.
    /// `None` where the kernel cannot clone a detached mount (before Linux 6.15): then
    /// programs get the writable mount, and no open is continued (`Sentry::open`).
    view: Option<OwnedFd>,
    token: String,
    counter: Mutex<(u64, VecDeque<String>)>,
}

impl Area {
    /// `mount` is the detached tmpfs and `view` its read-only clone (both made while still
    /// privileged).
    pub fn new(mount: OwnedFd, view: Option<OwnedFd>) -> SysResult<Self> {
        let token = format!(".fnbox-{}", sys::random_hex(8));
        // Root's alone: a program reaches the token directory as `..` of a directory it holds
        // (fstat runs natively, and follows a path given with it), and must not look from
        // there into another's listings (a root process's `fd/`, which Linux lets no other
        // user see). Its own directory it holds open, so needs no search permission here.
        sys::mkdirat(Some(mount.as_fd()), Path::new(&token), 0o700, false).map_err(errno)?;
        Ok(Self { root: mount, view, token, counter: Mutex::new((0, VecDeque::new())) })
    }

    /// Whether programs see the area read-only.
    pub fn read_only(&self) -> bool {
        self.view.is_some()
    }

    /// The prefix the kernel prints for files of the area (`/<token>/`).
    pub fn prefix(&self) -> Vec<u8> {
        format!("/{}/", self.token).into_bytes()
    }

    /// Creates a directory with `entries` and opens it; returns the descriptor and the
    /// directory's name (for mapping it back to its `/proc` path).
    pub fn materialize(&self, entries: &[(Vec<u8>, Kind)], flags: i32) -> SysResult<(OwnedFd, Vec<u8>)> {
        let name = {
            let mut c = self.counter.lock().unwrap_or_else(|e| e.into_inner());
            c.0 += 1;
            let name = format!("d{}", c.0);
            c.1.push_back(name.clone());
            if c.1.len() > KEEP {
                if let Some(old) = c.1.pop_front() {
                    if let Ok(tok) = sys::fs::openat(
                        Some(self.root.as_fd()),
                        Path::new(&self.token),
                        libc::O_PATH | libc::O_DIRECTORY,
                        0,
                    ) {
                        remove_tree(&tok, old.as_bytes());
                    }
                }
            }
            name
        };
        let rel = format!("{}/{name}", self.token);
        let dir = Path::new(&rel);
        sys::mkdirat(Some(self.root.as_fd()), dir, 0o555 | 0o200, false).map_err(errno)?;
        let dfd = sys::fs::openat(Some(self.root.as_fd()), dir, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(errno)?;
        for (n, kind) in entries {
            let p = Path::new(std::ffi::OsStr::from_bytes(n));
            let r = match kind {
                Kind::Dir => sys::mkdirat(Some(dfd.as_fd()), p, 0o555, false),
                Kind::File => sys::fs::openat(Some(dfd.as_fd()), p, libc::O_CREAT | libc::O_WRONLY, 0o444).map(drop),
                Kind::Link => sys::symlinkat(Path::new("."), Some(dfd.as_fd()), p),
            };
            r.map_err(errno)?;
        }
        let through = self.view.as_ref().unwrap_or(&self.root);
        let fd = sys::fs::openat(Some(through.as_fd()), dir, flags | libc::O_DIRECTORY, 0).map_err(errno)?;
        Ok((fd, name.into_bytes()))
    }
}

/// Removes directory `name` under `dir` and its entries (one level deep, as materialised
/// directories are).
fn remove_tree(dir: &OwnedFd, name: &[u8]) {
    let name = Path::new(std::ffi::OsStr::from_bytes(name));
    if let Ok(d) = sys::fs::openat(Some(dir.as_fd()), name, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
        for entry in super::host::list_fd(&d).unwrap_or_default() {
            let e = Path::new(std::ffi::OsStr::from_bytes(&entry));
            if sys::fs::unlinkat(Some(d.as_fd()), e, 0).is_err() {
                let _ = sys::fs::unlinkat(Some(d.as_fd()), e, libc::AT_REMOVEDIR);
            }
        }
    }
    let _ = sys::fs::unlinkat(Some(dir.as_fd()), name, libc::AT_REMOVEDIR);
}
