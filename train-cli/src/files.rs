//! File access at the binary's edge: data readers, bundle reading with a size bound, and
//! atomic writes (temp file in the same directory, fsync, rename) so that a crash or kill
//! never leaves a half-written bundle or checkpoint in place of a good one.

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Bundles and checkpoints larger than this are refused before being read.
pub const MAX_MODEL_BYTES: u64 = 4 << 30;

pub fn open(path: &Path) -> Result<BufReader<File>> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(BufReader::with_capacity(1 << 20, f))
}

/// The path as a label for error messages.
pub fn label(path: &Path) -> String {
    path.display().to_string()
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

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, never a
/// mix; on any error (a full disk, say) the old file is untouched and the temp file removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
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
        return Err(e).with_context(|| format!("cannot write {} (the previous file, if any, is unchanged)", path.display()));
    }
    Ok(())
}

/// Creates (truncating) a file for streaming output.
pub fn create(path: &Path) -> Result<std::io::BufWriter<File>> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(std::io::BufWriter::with_capacity(1 << 20, f))
}
