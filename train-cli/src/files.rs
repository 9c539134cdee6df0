//! File access at the binary's edge: bundle reading with a size bound, and
//! atomic writes (temp file in the same directory, fsync, rename) so that a crash or kill
//! never leaves a half-written bundle or checkpoint in place of a good one.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Bundles and checkpoints larger than this are refused before being read.
pub const MAX_MODEL_BYTES: u64 = 4 << 30;

/// The path as a label for error messages.
pub fn label(path: &Path) -> String {
    path.display().to_string()
}

/// The file name alone, for what a bundle records about its training data: a bundle is
/// shared, and the directories of the machine that trained it are nobody else's business.
pub fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

pub fn read_model(path: &Path) -> Result<Vec<u8>> {
    let len = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    if len > MAX_MODEL_BYTES {
        bail!("{} is {} bytes, more than the {} byte limit for a model file", path.display(), len, MAX_MODEL_BYTES);
    }
    let mut bytes = Vec::with_capacity(len as usize);
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes)
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Removes temp files of `path` left by writers that were killed mid-write (a kill cannot
/// clean up, and a checkpoint's temp file is as large as the checkpoint). Only where
/// `/proc` says which processes are alive (Linux); elsewhere they stay, harmless: they are
/// never read.
fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let pid = file.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, never a
/// mix; on any error (a full disk, say) the old file is untouched and the temp file removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    remove_stale_temps(path);
    let tmp = temp_path(path);
    let result = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Persist the rename itself; not every platform can open a directory, so best effort.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e)
            .with_context(|| format!("cannot write {} (the previous file, if any, is unchanged)", path.display()));
    }
    Ok(())
}

/// Creates (truncating) a file for streaming output.
pub fn create(path: &Path) -> Result<std::io::BufWriter<File>> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(std::io::BufWriter::with_capacity(1 << 20, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_cleans_up_after_killed_writers() {
        let dir = std::env::temp_dir().join(format!("adaftr-files-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.safetensors");
        write_atomic(&path, b"old").unwrap();
        // A temp file of a dead writer (no such pid), and one of another target.
        let stale = dir.join(".m.safetensors.tmp-4294967295");
        let other = dir.join(".n.safetensors.tmp-4294967295");
        fs::write(&stale, b"partial").unwrap();
        fs::write(&other, b"partial").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(stale.exists(), !Path::new("/proc/self").exists());
        assert!(other.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
