//! The filesystem operations cgroup code needs, behind a trait so tests can use a fake tree.

use std::io;
use std::path::Path;

pub trait CgroupFs: Send + Sync {
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Writes a whole value in one `write(2)`, as cgroup files require.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    /// Creates a directory; an existing one is fine.
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
}

/// The real cgroup filesystems.
pub struct HostCgroupFs;

impl CgroupFs for HostCgroupFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        crate::sys::write_file(path, value.as_bytes())
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        match std::fs::create_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            r => r,
        }
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}
