//! Packs a function's code for upload: a `.zip` as it is, or a directory into a zip whose
//! bytes depend only on the files and their modification times (sorted, fixed DOS
//! timestamps), so the same code has the same digest. Each file's modification time goes in
//! the zip's extended timestamp field, which the server restores: Python checks its byte-code
//! cache (`__pycache__`, which `pip install --target package` fills) against the source's
//! modification time, so without it every cold start would compile the libraries again.
//! Symlinks are stored as symlinks: the server refuses those that leave the tree.

use crate::codestore::ZIP_MAX;
use crate::error::{Context, Error, Result};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use zip::write::FullFileOptions;

pub fn pack(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .context(|| format!("cannot read the code at {} (give a directory or a .zip file)", path.display()))?;
    if meta.is_file() {
        if meta.len() > ZIP_MAX {
            return Err(Error::TooLarge(format!(
                "{} is {} MiB, over the 100 MiB limit for code: leave out what the function does not need",
                path.display(),
                meta.len() >> 20
            )));
        }
        return std::fs::read(path).context(|| format!("cannot read {}", path.display()));
    }
    let mut entries = Vec::new();
    walk(path, Path::new(""), &mut entries)?;
    entries.sort();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let zerr = |e: zip::result::ZipError| Error::Internal(format!("cannot build the code zip: {e}"));
    for rel in entries {
        let full = path.join(&rel);
        let name = rel.to_string_lossy().into_owned();
        let lmeta = std::fs::symlink_metadata(&full).context(|| format!("cannot read {}", full.display()))?;
        let mut opts = FullFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(lmeta.permissions().mode() & 0o777);
        if lmeta.file_type().is_symlink() {
            let target = std::fs::read_link(&full).context(|| format!("cannot read the symlink {}", full.display()))?;
            w.add_symlink(name, target.to_string_lossy(), opts).map_err(zerr)?;
        } else if lmeta.is_dir() {
            w.add_directory(name, opts).map_err(zerr)?;
        } else if lmeta.is_file() {
            // Info-ZIP's extended timestamp (0x5455): flags (modification time only), mtime.
            let mtime = (lmeta.mtime().clamp(0, u32::MAX as i64) as u32).to_le_bytes();
            let field: Box<[u8]> = Box::new([1, mtime[0], mtime[1], mtime[2], mtime[3]]);
            opts.add_extra_data(0x5455, field, false).map_err(zerr)?;
            w.start_file(name, opts).map_err(zerr)?;
            let data = std::fs::read(&full).context(|| format!("cannot read {}", full.display()))?;
            w.write_all(&data).context(|| "cannot build the code zip".into())?;
        } else {
            return Err(Error::RejectedCode(format!(
                "{} is a special file (socket, device or fifo): only files, directories and symlinks can be deployed",
                full.display()
            )));
        }
    }
    let zip = w.finish().map_err(zerr)?.into_inner();
    if zip.len() as u64 > ZIP_MAX {
        return Err(Error::TooLarge(format!(
            "the code in {} packs to {} MiB, over the 100 MiB limit: leave out what the function does not need",
            path.display(),
            zip.len() >> 20
        )));
    }
    Ok(zip)
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    for e in std::fs::read_dir(&dir).context(|| format!("cannot list {}", dir.display()))? {
        let e = e.context(|| format!("cannot list {}", dir.display()))?;
        let r = rel.join(e.file_name());
        let ft = e.file_type().context(|| format!("cannot read {}", e.path().display()))?;
        out.push(r.clone());
        if ft.is_dir() {
            walk(root, &r, out)?;
        }
    }
    Ok(())
}
