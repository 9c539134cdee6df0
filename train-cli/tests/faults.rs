//! Faults through the real binary: SIGKILL at many points of a training run (with a
//! checkpoint after every batch) never corrupts the last good checkpoint, and resuming
//! after all those kills reaches the uninterrupted result; a full disk while saving a
//! bundle or a checkpoint is a clear error that keeps the previous file.
//!
//! The full disk is simulated with a file-size limit (`ulimit -f`, with SIGXFSZ ignored),
//! so writes past it fail with EFBIG exactly as they would with ENOSPC.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use adaftr_core::bundle;
use adaftr_core::train::Trainer;
use candle_core::Device;

mod common;
use common::*;

/// Everything in `dir` other than `keep` must be a temp file of one of `keep`'s writes
/// (a kill can leave one; it is never read).
fn only_temp_files_besides(dir: &Path, keep: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let is_temp = keep.iter().any(|k| name.starts_with(&format!(".{k}.tmp-")));
        assert!(keep.contains(&name.as_str()) || is_temp, "unexpected file {name} in {}", dir.display());
    }
}

fn temp_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map_or(0, |d| d.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp-")).count())
}

/// (epoch, step) of a checkpoint, which must load.
fn checkpoint_position(path: &Path) -> (usize, usize) {
    let bytes = std::fs::read(path).unwrap();
    match Trainer::from_checkpoint(&bytes, &Device::Cpu) {
        Ok(t) => (t.state().epoch, t.state().step),
        Err(e) => panic!("the checkpoint {} is corrupt after a kill: {e}", path.display()),
    }
}

fn train_args<'a>(train: &'a str, valid: &'a str, out: &'a str, ckdir: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--train",
        train,
        "--valid",
        valid,
        "--out",
        out,
        "--epochs",
        "2",
        "--batch-size",
        "256",
        "--seed",
        "7",
        "--checkpoint-dir",
        ckdir,
        "--checkpoint-every",
        "1",
    ]
}

#[test]
fn sigkill_at_many_points_never_corrupts_the_checkpoint() {
    let dir = Tmp::new("kill");
    let (train, valid) = synth(&dir, 4_000, 500);
    let (reference, out) = (dir.path("reference.safetensors"), dir.path("model.safetensors"));
    let (ck_ref, ck) = (dir.path("ck-ref"), dir.path("ck"));

    // The uninterrupted run, timed: kills are spread over that duration.
    let start = Instant::now();
    ok(&train_args(&train, &valid, &reference, &ck_ref));
    let full = start.elapsed();

    let ckpt = Path::new(&ck).join("checkpoint.safetensors");
    let mut args = train_args(&train, &valid, &out, &ck);
    args.push("--resume");
    let mut last: Option<(usize, usize)> = None;
    let mut kills = 0;
    // Kills that left a temp file (landed inside a checkpoint write); for the log only.
    let mut mid_write = 0;
    let mut finished_early = false;
    // About one batch's time (two epochs of 16 batches, plus validation and start-up).
    let batch = full / 40;
    let inode = |p: &Path| std::fs::metadata(p).ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    for i in 0..24u32 {
        let mut child = Command::new(BIN).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let mut exited = None;
        let mut wait_until = |done: &mut dyn FnMut() -> bool, limit: Instant| {
            while exited.is_none() && !done() && Instant::now() < limit {
                exited = child.try_wait().unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        if i % 6 == 5 {
            // Killed during start-up (reading data, loading the checkpoint).
            let at = Instant::now() + Duration::from_millis(5 + 10 * u64::from(i));
            wait_until(&mut || false, at);
        } else {
            // Killed a spread of offsets (0 to 2 batches) after this run's first new
            // checkpoint, so kills land in batches, in checkpoint writes and in validation;
            // every run makes progress.
            let before = inode(&ckpt);
            wait_until(&mut || inode(&ckpt) != before, Instant::now() + full * 2);
            let offset = batch.mul_f64(f64::from((i * 7) % 20) / 10.0);
            wait_until(&mut || false, Instant::now() + offset);
        }
        let exited = exited.or_else(|| child.try_wait().unwrap());
        match exited {
            Some(status) => {
                // The run got to the end before this kill: the chain is complete.
                assert!(status.success(), "a resumed run failed");
                finished_early = true;
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                mid_write += usize::from(temp_files(Path::new(&ck)) > 0);
            }
        }
        if ckpt.exists() {
            let pos = checkpoint_position(&ckpt);
            if let Some(prev) = last {
                assert!(pos >= prev, "the checkpoint went back from {prev:?} to {pos:?}");
            }
            last = Some(pos);
        } else {
            assert!(last.is_none(), "a kill removed the last good checkpoint");
        }
        only_temp_files_besides(Path::new(&ck), &["checkpoint.safetensors"]);
        if Path::new(&out).exists() {
            bundle::load(&std::fs::read(&out).unwrap(), &Device::Cpu).expect("a kill left a corrupt bundle");
        }
    }
    eprintln!("{kills} kills ({mid_write} during a checkpoint write); last checkpoint at {last:?}");
    assert!(kills >= 10, "only {kills} kills landed before the run finished");
    assert!(last.is_some(), "no checkpoint was ever written");

    // Resume to the end: the same model as the uninterrupted run.
    if !finished_early {
        let out = run(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(predictions_of(&reference, &valid), predictions_of(&out, &valid), "the resumed run differs");
    // Temp files of killed writes are cleaned up by the next write (where /proc exists).
    if Path::new("/proc/self").exists() {
        assert_eq!(temp_files(Path::new(&ck)), 0, "temp files of killed runs were left behind");
    }
}

/// Runs adaftr with writes limited to `limit` bytes per file (EFBIG past it, as on a full
/// disk).
fn run_with_file_limit(limit: u64, args: &[&str]) -> Output {
    // `ulimit -f` counts 512-byte blocks in dash and 1024-byte blocks in bash; the
    // smaller reading keeps the limit at most `limit` in either.
    let blocks = (limit / 1024).max(1);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {blocks} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args)
        .output()
        .expect("spawn sh");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn full_disk_while_saving_keeps_the_previous_files() {
    let dir = Tmp::new("full");
    let (train, valid) = synth(&dir, 1_500, 300);
    let (model, ck) = (dir.path("model.safetensors"), dir.path("ck"));
    let ckpt = Path::new(&ck).join("checkpoint.safetensors");
    let base = ["--train", &train, "--valid", &valid, "--out", &model, "--epochs", "1", "--batch-size", "256"];

    // A good model and checkpoint to protect.
    let mut args = vec!["train"];
    args.extend(base);
    args.extend(["--seed", "1", "--checkpoint-dir", &ck]);
    ok(&args);
    let (good_model, good_ckpt) = (std::fs::read(&model).unwrap(), std::fs::read(&ckpt).unwrap());

    // Saving the bundle hits the limit (no checkpoints in this run).
    let mut args = vec!["train"];
    args.extend(base);
    args.extend(["--seed", "2"]);
    let out = run_with_file_limit(good_model.len() as u64 / 2, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run should have failed to save");
    assert!(
        err.contains(&format!("cannot write {model}")) && err.contains("unchanged") && err.contains("too large"),
        "unclear error: {err}"
    );
    assert_eq!(std::fs::read(&model).unwrap(), good_model, "the previous bundle was changed");
    bundle::load(&good_model, &Device::Cpu).unwrap();
    assert_eq!(temp_files(&dir.0), 0, "a temp file was left behind");

    // Saving a checkpoint hits the limit: training stops and names the good checkpoint.
    let mut args = vec!["train"];
    args.extend(base);
    args.extend(["--seed", "3", "--checkpoint-dir", &ck, "--checkpoint-every", "1"]);
    let out = run_with_file_limit(good_ckpt.len() as u64 / 2, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("training stopped")
            && err.contains(&format!("the last good checkpoint is {}", ckpt.display()))
            && err.contains("too large"),
        "unclear error: {err}"
    );
    assert_eq!(std::fs::read(&ckpt).unwrap(), good_ckpt, "the previous checkpoint was changed");
    Trainer::from_checkpoint(&good_ckpt, &Device::Cpu).unwrap();
    assert_eq!(std::fs::read(&model).unwrap(), good_model);
    assert_eq!(temp_files(Path::new(&ck)), 0, "a temp file was left behind");

    // And with room again, resuming from the kept checkpoint works.
    let mut args = vec!["train"];
    args.extend(base);
    args.extend(["--seed", "1", "--checkpoint-dir", &ck, "--resume"]);
    ok(&args);
}
