//! Path resolution inside the sandbox root.
//!
//! Every path a program passes is resolved here, by the Sentry, against the sandbox's root,
//! never against the host's: `openat2(root, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! confines `..` and absolute symlinks to the root, and no magic link is ever followed.
//!
//! Paths under `/proc` belong to the synthetic `/proc` (see `proc/`), so resolution must know
//! whether a path reaches `/proc`, including through symlinks. The fast path asks the kernel
//! with `RESOLVE_NO_SYMLINKS`: when it succeeds (or fails for a reason other than meeting a
//! symlink) the path's components are exactly its text, so a lexical check decides. Paths
//! with symlinks take the slow path, a component-by-component walk that follows symlinks
//! itself (40 at most, as Linux) and notices when it enters `/proc`.

use super::fsops::{fd_statx, readlinkat, sys_statx_mask};
use super::notify::{errno, Call, ProgramFd, SysResult};
use crate::sys::{self, abi};
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};

const MAX_LINKS: u32 = 40;

/// What a path resolved to.
pub enum Node {
    /// A file in the sandbox's tree, opened `O_PATH` (not following a final symlink when
    /// asked not to).
    Fs(OwnedFd),
    /// An entry of the synthetic `/proc`: the components after `proc`.
    Proc(Vec<Vec<u8>>),
}

/// The directory a path's last component lives in, and that component.
pub enum Parent {
    Fs {
        dir: OwnedFd,
        name: Vec<u8>,
    },
    /// In `/proc` (where nothing can be created, renamed or removed): the components after
    /// `proc`, last one included.
    Proc(Vec<Vec<u8>>),
}

/// Where a path points, for a syscall the Sentry makes with the kernel resolving the path.
pub enum Located {
    /// An absolute path inside the sandbox. The Sentry runs chrooted into the sandbox root,
    /// whose tree holds no procfs (so no magic link): the kernel resolves such a path exactly
    /// as it would for the program, confined to the root.
    Path(Vec<u8>),
    /// An entry of the synthetic `/proc`: the components after `proc`.
    Proc(Vec<Vec<u8>>),
}

/// How a relative path's starting point is known.
struct Base {
    /// Canonical absolute path of the starting directory, as components.
    logical: Vec<Vec<u8>>,
}

/// The resolver: the sandbox root and what is needed to recognise `/proc` and the Sentry's
/// own synthetic directories.
pub struct Resolver {
    pub root: OwnedFd,
    /// Path prefix (as the kernel prints it) of the Sentry's synthetic directories.
    pub area_prefix: Vec<u8>,
    /// Maps a synthetic directory's name to the `/proc` components it stands for.
    pub area_dirs: std::sync::Mutex<std::collections::HashMap<Vec<u8>, Vec<Vec<u8>>>>,
    /// Each thread's working directory, as `base` found it (see `cache.rs`): dropped by
    /// `chdir`, `fchdir` (neither cached nor taken from the cache until the thread that made
    /// one makes its next call, which shows it finished: `PerThread::changing`), and whatever
    /// renames or removes a directory.
    pub cwds: super::cache::PerThread<Vec<Vec<u8>>>,
}

fn how(flags: u64, resolve: u64) -> abi::open_how {
    abi::open_how { flags: flags | libc::O_CLOEXEC as u64, mode: 0, resolve }
}

/// Splits a path into components, dropping empty ones and `.`.
pub fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".").map(|c| c.to_vec()).collect()
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for c in comps {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Lexical normalisation of `base` + `rel` (`..` pops, clamped at the root).
fn lexical(base: &[Vec<u8>], rel: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = if rel.first() == Some(&b'/') { Vec::new() } else { base.to_vec() };
    for c in components(rel) {
        if c == b".." {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out
}

fn is_proc(comps: &[Vec<u8>]) -> bool {
    comps.first().is_some_and(|c| c == b"proc")
}

impl Resolver {
    /// The canonical path of the caller's starting directory for `dirfd`.
    fn base(&self, call: &Call, dirfd: ProgramFd, rel: &[u8]) -> SysResult<Base> {
        if rel.first() == Some(&b'/') {
            return Ok(Base { logical: Vec::new() });
        }
        if dirfd == ProgramFd::CWD {
            if let Some(logical) = self.cwds.get(call.tid) {
                return Ok(Base { logical });
            }
        }
        // Taken before the host is asked: a rename or chdir meanwhile, or a chdir pending,
        // keeps the answer out of the cache.
        let ticket = self.cwds.ticket();
        let link =
            if dirfd == ProgramFd::CWD { format!("{}/cwd", call.tid) } else { format!("{}/fd/{dirfd}", call.tid) };
        let target = readlinkat(Some(super::host::proc_fd()?), link.as_bytes()).map_err(|e| match e {
            libc::ENOENT if dirfd != ProgramFd::CWD => libc::EBADF,
            e => e,
        })?;
        if target.first() != Some(&b'/') {
            // pipe:[..], socket:[..], anon_inode:...: not a directory.
            return Err(libc::ENOTDIR);
        }
        if target.starts_with(&self.area_prefix) {
            let name = target[self.area_prefix.len()..].split(|&b| b == b'/').find(|c| !c.is_empty()).unwrap_or(b"");
            if let Some(p) = self.area_dirs.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
                let mut logical = vec![b"proc".to_vec()];
                logical.extend(p.iter().cloned());
                return Ok(Base { logical });
            }
        }
        if dirfd != ProgramFd::CWD {
            // The descriptor must be a directory.
            let st = sys_statx_mask(Some(super::host::proc_fd()?), link.as_bytes(), 0, libc::STATX_TYPE)?;
            if st.stx_mode as u32 & libc::S_IFMT != libc::S_IFDIR {
                return Err(libc::ENOTDIR);
            }
        } else if !target.ends_with(b" (deleted)") {
            self.cwds.put_since(call.tid, components(&target), ticket);
        }
        Ok(Base { logical: components(&target) })
    }

    /// Thread `tid` changes its working directory (the kernel will run the call).
    pub fn cwd_moves(&self, tid: i32) {
        self.cwds.changing(tid);
    }

    /// Thread `tid` made a new call: any `chdir` or `fchdir` of its own has finished.
    pub fn settled(&self, tid: i32) {
        self.cwds.settled(tid);
    }

    /// First look at a path: `/proc` entries are recognised from the text when no `..` can
    /// make the text lie; everything else becomes an absolute path for the kernel. When the
    /// kernel answers `EACCES`, the path met the `/proc` placeholder (a directory nobody in
    /// the sandbox may enter) through a symlink or `..`: then [`Resolver::canonical`] walks
    /// it to find out where it really goes.
    pub fn locate(&self, call: &Call, dirfd: ProgramFd, path: &[u8]) -> SysResult<Located> {
        if path.is_empty() {
            return Err(libc::ENOENT);
        }
        let base = self.base(call, dirfd, path)?;
        let lex = lexical(&base.logical, path);
        if is_proc(&lex) && !components(path).iter().any(|c| c == b"..") {
            return Ok(Located::Proc(lex[1..].to_vec()));
        }
        if path.first() == Some(&b'/') {
            return Ok(Located::Path(path.to_vec()));
        }
        let mut full = join(&base.logical);
        if full != b"/" {
            full.push(b'/');
        }
        full.extend_from_slice(path);
        Ok(Located::Path(full))
    }

    /// Whether the kernel, resolving `path` for the caller now, stays out of the synthetic
    /// `/proc` and the Sentry's area: then the call may go to the kernel as the program made
    /// it (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`). Not a security decision: whatever the kernel
    /// resolves later (after a rename, or another thread rewriting the path) is in the
    /// sandbox's own mount namespace (see docs/architecture.md, "Continued calls"). A
    /// failure other than `EACCES` (which the `/proc` placeholder gives) is one the kernel
    /// gives again; `false` means "emulate".
    pub fn outside_proc(&self, call: &Call, dirfd: ProgramFd, path: &[u8], follow: bool) -> bool {
        if path.is_empty() {
            return false;
        }
        let Ok(base) = self.base(call, dirfd, path) else { return true };
        // A starting directory of the area maps to /proc; `..` may lexically reach it.
        if is_proc(&lexical(&base.logical, path)) {
            return false;
        }
        let mut full = join(&base.logical);
        if path.first() != Some(&b'/') {
            full.push(b'/');
        }
        full.extend_from_slice(path);
        let c = super::notify::cstring(&full);
        let flags = libc::O_PATH as u64 | if follow { 0 } else { libc::O_NOFOLLOW as u64 };
        let res = abi::RESOLVE_IN_ROOT | abi::RESOLVE_NO_MAGICLINKS;
        // Without symlinks the text is the walk, and the text is not /proc.
        match sys::openat2(self.root.as_fd(), &c, &how(flags, res | abi::RESOLVE_NO_SYMLINKS)) {
            Ok(_) => return true,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {}
            Err(e) => return e.raw_os_error() != Some(libc::EACCES),
        }
        // Through symlinks: into /proc fails at the placeholder, or ends on it.
        match sys::openat2(self.root.as_fd(), &c, &how(flags, res)) {
            Ok(fd) => fd_statx(&fd, libc::STATX_TYPE | libc::STATX_MODE)
                .is_ok_and(|x| x.stx_mode as u32 & libc::S_IFMT != libc::S_IFDIR || x.stx_mode & 0o7777 != 0),
            Err(e) => e.raw_os_error() != Some(libc::EACCES),
        }
    }

    /// The walk: where `path` really goes, as a canonical path (no symlink, no `..`) or a
    /// `/proc` entry. With `follow`, a final symlink is followed; a missing last component
    /// (for calls that create it) gives its parent's canonical path plus the name.
    pub fn canonical(&self, call: &Call, dirfd: ProgramFd, path: &[u8], follow: bool) -> SysResult<Located> {
        let named = |fd: &OwnedFd, name: Option<&[u8]>| -> SysResult<Located> {
            let mut p = super::host::read_link(&super::host::self_fd(fd))?;
            if let Some(n) = name {
                if p != b"/" {
                    p.push(b'/');
                }
                p.extend_from_slice(n);
            }
            Ok(Located::Path(p))
        };
        if follow {
            match self.resolve(call, dirfd, path, true, false) {
                Ok(Node::Fs(fd)) => return named(&fd, None),
                Ok(Node::Proc(c)) => return Ok(Located::Proc(c)),
                Err(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        match self.resolve_parent(call, dirfd, path)? {
            Parent::Fs { dir, name } => named(&dir, Some(&name)),
            Parent::Proc(c) => Ok(Located::Proc(c)),
        }
    }

    /// Resolves `path` (relative to `dirfd`) to a node. `follow`: follow a final symlink.
    /// `empty`: an empty path means `dirfd` itself (`AT_EMPTY_PATH`).
    pub fn resolve(&self, call: &Call, dirfd: ProgramFd, path: &[u8], follow: bool, empty: bool) -> SysResult<Node> {
        // A trailing slash makes the last component a directory: symlinks to one are followed.
        let follow = follow || path.ends_with(b"/");
        if path.is_empty() {
            if !empty {
                return Err(libc::ENOENT);
            }
            return self.resolve_empty(call, dirfd);
        }
        let base = self.base(call, dirfd, path)?;
        let has_dotdot = components(path).iter().any(|c| c == b"..");
        let lex = lexical(&base.logical, path);
        if !has_dotdot && is_proc(&lex) {
            return Ok(Node::Proc(lex[1..].to_vec()));
        }
        // Fast path: no symlinks anywhere.
        let mut full = join(&base.logical);
        if path.first() != Some(&b'/') {
            full.push(b'/');
        }
        full.extend_from_slice(path);
        let c = super::notify::cstring(&full);
        let mut flags = libc::O_PATH as u64;
        if !follow {
            flags |= libc::O_NOFOLLOW as u64;
        }
        let res = abi::RESOLVE_IN_ROOT | abi::RESOLVE_NO_MAGICLINKS | abi::RESOLVE_NO_SYMLINKS;
        match sys::openat2(self.root.as_fd(), &c, &how(flags, res)) {
            Ok(fd) => {
                if is_proc(&lex) {
                    return Ok(Node::Proc(lex[1..].to_vec()));
                }
                Ok(Node::Fs(fd))
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => self.walk_node(base.logical, path, follow),
            // With `..` in the path, only a walk knows whether it really reaches /proc.
            Err(_) if is_proc(&lex) => self.walk_node(base.logical, path, follow),
            Err(e) => Err(errno(e)),
        }
    }

    /// `AT_EMPTY_PATH`: the descriptor itself (or the cwd).
    fn resolve_empty(&self, call: &Call, dirfd: ProgramFd) -> SysResult<Node> {
        if dirfd == ProgramFd::CWD {
            let cwd = format!("{}/cwd", call.tid);
            let fd = sys::openat(Some(super::host::proc_fd()?), std::path::Path::new(&cwd), libc::O_PATH, 0)
                .map_err(errno)?;
            return Ok(Node::Fs(fd));
        }
        Ok(Node::Fs(call.fetch_fd(dirfd)?))
    }

    /// Resolves all but the last component. Trailing slashes are ignored (`mkdir a/`).
    pub fn resolve_parent(&self, call: &Call, dirfd: ProgramFd, path: &[u8]) -> SysResult<Parent> {
        if path.is_empty() {
            return Err(libc::ENOENT);
        }
        let base = self.base(call, dirfd, path)?;
        let comps = components(path);
        let Some(last) = comps.last().cloned() else {
            // "/" or "." alone: the directory itself has no parent to create in.
            return Err(libc::EEXIST);
        };
        let has_dotdot = comps.iter().any(|c| c == b"..");
        let lex = lexical(&base.logical, path);
        if !has_dotdot && is_proc(&lex) {
            return Ok(Parent::Proc(lex[1..].to_vec()));
        }
        if last == b".." || has_dotdot {
            return self.walk_parent(base.logical, path);
        }
        let mut parent = base.logical.clone();
        if path.first() == Some(&b'/') {
            parent.clear();
        }
        parent.extend(comps[..comps.len() - 1].iter().cloned());
        let c = super::notify::cstring(&join(&parent));
        let res = abi::RESOLVE_IN_ROOT | abi::RESOLVE_NO_MAGICLINKS | abi::RESOLVE_NO_SYMLINKS;
        match sys::openat2(self.root.as_fd(), &c, &how((libc::O_PATH | libc::O_DIRECTORY) as u64, res)) {
            Ok(dir) => Ok(Parent::Fs { dir, name: last }),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => self.walk_parent(base.logical, path),
            Err(e) => Err(errno(e)),
        }
    }

    /// Opens a directory given by canonical (symlink-free) components.
    fn open_logical(&self, comps: &[Vec<u8>]) -> SysResult<OwnedFd> {
        let c = super::notify::cstring(&join(comps));
        let res = abi::RESOLVE_IN_ROOT | abi::RESOLVE_NO_MAGICLINKS | abi::RESOLVE_NO_SYMLINKS;
        sys::openat2(self.root.as_fd(), &c, &how((libc::O_PATH | libc::O_DIRECTORY) as u64, res)).map_err(errno)
    }

    fn walk_node(&self, base: Vec<Vec<u8>>, path: &[u8], follow: bool) -> SysResult<Node> {
        match self.walk(base, path, follow, false)? {
            Walked::Node(n) => Ok(n),
            Walked::Parent(_) => Err(libc::ENOENT),
        }
    }

    fn walk_parent(&self, base: Vec<Vec<u8>>, path: &[u8]) -> SysResult<Parent> {
        match self.walk(base, path, false, true)? {
            Walked::Parent(p) => Ok(p),
            // The path ended on a directory reached by `..`: it exists.
            Walked::Node(_) => Err(libc::EEXIST),
        }
    }

    /// The slow path: component by component, following symlinks in userspace.
    fn walk(&self, base: Vec<Vec<u8>>, path: &[u8], follow: bool, parent_only: bool) -> SysResult<Walked> {
        let mut stack = if path.first() == Some(&b'/') { Vec::new() } else { base };
        let mut cur = self.open_logical(&stack)?;
        let mut todo: std::collections::VecDeque<Vec<u8>> = components(path).into();
        let mut links = 0;
        while let Some(comp) = todo.pop_front() {
            let last = todo.is_empty();
            if comp == b".." {
                stack.pop();
                cur = self.open_logical(&stack)?;
                if last {
                    return Ok(Walked::Node(Node::Fs(cur)));
                }
                continue;
            }
            if stack.is_empty() && comp == b"proc" {
                let mut rest: Vec<Vec<u8>> = todo.into_iter().collect();
                // A path ending in `..` ends on a directory that was walked through.
                let follow = follow || rest.last().is_some_and(|c| c == b"..");
                if parent_only && rest.is_empty() {
                    return Ok(Walked::Parent(Parent::Proc(Vec::new())));
                }
                // `..` inside /proc is lexical: the synthetic tree has no symlinked dirs
                // other than the ones proc/ resolves itself.
                let mut out: Vec<Vec<u8>> = Vec::new();
                for c in rest.drain(..) {
                    if c == b".." {
                        if out.pop().is_none() {
                            // /proc/.. is the root again.
                            return self.walk(Vec::new(), b"/", follow, parent_only);
                        }
                    } else {
                        out.push(c);
                    }
                }
                return Ok(if parent_only { Walked::Parent(Parent::Proc(out)) } else { Walked::Node(Node::Proc(out)) });
            }
            if last && parent_only {
                return Ok(Walked::Parent(Parent::Fs { dir: cur, name: comp }));
            }
            let c = super::notify::cstring(&comp);
            let res = abi::RESOLVE_BENEATH | abi::RESOLVE_NO_MAGICLINKS | abi::RESOLVE_NO_SYMLINKS;
            let fd = match sys::openat2(cur.as_fd(), &c, &how((libc::O_PATH | libc::O_NOFOLLOW) as u64, res)) {
                Ok(fd) => fd,
                Err(e) => return Err(errno(e)),
            };
            let st = fd_statx(&fd, libc::STATX_TYPE)?;
            let kind = st.stx_mode as u32 & libc::S_IFMT;
            if kind == libc::S_IFLNK && (!last || follow) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(libc::ELOOP);
                }
                let target = readlinkat(Some(fd.as_fd()), b"")?;
                if target.first() == Some(&b'/') {
                    stack.clear();
                    cur = self.open_logical(&stack)?;
                }
                for c in components(&target).into_iter().rev() {
                    todo.push_front(c);
                }
                if components(&target).is_empty() && target.first() != Some(&b'/') {
                    return Err(libc::ENOENT);
                }
                continue;
            }
            if last {
                return Ok(Walked::Node(Node::Fs(fd)));
            }
            if kind != libc::S_IFDIR {
                return Err(libc::ENOTDIR);
            }
            stack.push(comp);
            cur = fd;
        }
        // Path ended after following links or at a directory: `cur` is it.
        if parent_only {
            return Err(libc::EEXIST);
        }
        Ok(Walked::Node(Node::Fs(cur)))
    }
}

enum Walked {
    Node(Node),
    Parent(Parent),
}

/// A C string from bytes known not to contain NUL.
pub fn c(p: &[u8]) -> CString {
    super::notify::cstring(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(s: &str) -> Vec<Vec<u8>> {
        components(s.as_bytes())
    }

    #[test]
    fn lexical_normalisation_clamps_at_root() {
        assert_eq!(lexical(&comps("/a/b"), b"../../../proc/self"), comps("/proc/self"));
        assert_eq!(lexical(&comps("/a/b"), b"c/./d"), comps("/a/b/c/d"));
        assert_eq!(lexical(&comps("/a"), b"/x//y/"), comps("/x/y"));
        assert_eq!(join(&[]), b"/");
        assert_eq!(join(&comps("/usr/lib")), b"/usr/lib");
    }
}
