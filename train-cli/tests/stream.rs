//! Streaming training through the real binary: a shuffle buffer that holds the file trains
//! exactly the in-memory model; a small one keeps peak memory flat as the file grows; a
//! run killed mid-file resumes to the uninterrupted result; `eval`, streamed, reports the
//! loaded file's metrics.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use adaftr_core::bundle;
use adaftr_core::data::{load_with_schema, LoadOptions};
use adaftr_core::evaluate::{predict, Evaluation};
use adaftr_core::train::Trainer;
use candle_core::Device;

mod common;
use common::*;

/// Runs adaftr to completion and returns its peak resident memory in bytes (the kernel's
/// count for this child alone, from `wait4`).
fn peak_rss(args: &[&str]) -> u64 {
    #[allow(clippy::zombie_processes)] // reaped by `wait4` below
    let child = Command::new(BIN).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut status = 0;
    // SAFETY: plain syscall on our own child; `usage` is written by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "adaftr {args:?} failed");
    // Linux reports kilobytes.
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn a_buffer_that_holds_the_file_trains_the_in_memory_model() {
    let dir = Tmp::new("stream-same");
    let (train, valid) = synth(&dir, 3_000, 500);
    let (loaded, streamed) = (dir.path("loaded.safetensors"), dir.path("streamed.safetensors"));
    ok(&quick_train(&train, &valid, &loaded, &[]));
    let out = ok(&quick_train(&train, &valid, &streamed, &["--stream", "--shuffle-buffer", "3001"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("streaming"));
    assert_eq!(predictions_of(&loaded, &valid), predictions_of(&streamed, &valid));
    assert!(std::fs::read(&loaded).unwrap() == std::fs::read(&streamed).unwrap(), "the bundles' bytes differ");

    // A smaller buffer shuffles differently, but trains a model of the same data.
    let small = dir.path("small.safetensors");
    ok(&quick_train(&train, &valid, &small, &["--stream", "--shuffle-buffer", "400"]));
    assert_ne!(predictions_of(&loaded, &valid), predictions_of(&small, &valid));

    // Over the memory budget, streaming is chosen without being asked.
    let auto = dir.path("auto.safetensors");
    let out = ok(&quick_train(&train, &valid, &auto, &["--memory-budget-mib", "0", "--shuffle-buffer", "400"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("over the 0 MiB budget"));
    assert_eq!(predictions_of(&small, &valid), predictions_of(&auto, &valid));
}

#[cfg(target_os = "linux")]
#[test]
fn a_small_buffer_keeps_memory_flat_as_the_file_grows() {
    let dir = Tmp::new("stream-rss");
    let valid = dir.path("valid.csv");
    ok(&["synth", "--rows", "500", "--seed", "2", "--out", &valid]);
    let mut peaks = Vec::new();
    for rows in [40_000, 160_000] {
        let train = dir.path(&format!("train-{rows}.csv"));
        ok(&["synth", "--rows", &rows.to_string(), "--seed", "1", "--no-auc", "--out", &train]);
        let size = std::fs::metadata(&train).unwrap().len();
        let out = dir.path("m.safetensors");
        let mut a = quick_train(&train, &valid, &out, &["--stream", "--shuffle-buffer", "2000"]);
        for (flag, value) in [("--epochs", "1"), ("--batch-size", "1024")] {
            let at = a.iter().position(|&x| x == flag).unwrap() + 1;
            a[at] = value;
        }
        let peak = peak_rss(&a);
        eprintln!("{rows} rows ({} MB): streamed training peaked at {} MiB", size / 1_000_000, peak >> 20);
        peaks.push((size, peak));
        if rows == 40_000 {
            eval_streams_to_the_loaded_metrics(&out, &train);
        }
    }
    let ((small_file, small_peak), (big_file, big_peak)) = (peaks[0], peaks[1]);
    // Loaded, the extra 120k rows would take about 0.6 bytes per file byte (BENCHMARKS.md):
    // some 35 MiB. Streamed, the peak moves only with how many chunks happen to be in
    // flight (a few MiB) and with the vocabularies.
    let grew = big_peak.saturating_sub(small_peak);
    assert!(
        grew < (big_file - small_file) / 4,
        "peak memory grew by {} MiB for {} MB more data",
        grew >> 20,
        (big_file - small_file) / 1_000_000
    );
}

#[test]
fn a_run_killed_mid_file_resumes_to_the_uninterrupted_model() {
    let dir = Tmp::new("stream-kill");
    let (train, valid) = synth(&dir, 5_000, 500);
    let (reference, out, ck) = (dir.path("ref.safetensors"), dir.path("out.safetensors"), dir.path("ck"));
    let streaming = ["--stream", "--shuffle-buffer", "700"];
    ok(&quick_train(&train, &valid, &reference, &streaming));

    let mut resumable = streaming.to_vec();
    resumable.extend(["--checkpoint-dir", &ck, "--checkpoint-every", "1", "--resume"]);
    let a = quick_train(&train, &valid, &out, &resumable);
    let ckpt = Path::new(&ck).join("checkpoint.safetensors");
    let position = || {
        let bytes = std::fs::read(&ckpt).ok()?;
        Trainer::from_checkpoint(&bytes, &Device::Cpu).ok().map(|t| (t.state().epoch, t.state().step))
    };
    // Killed once it has checkpointed a few batches into the second epoch: the resumed run
    // must replay that epoch's shuffle to the batch reached.
    let mut child = Command::new(BIN).args(&a).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let limit = Instant::now() + Duration::from_secs(120);
    while !position().is_some_and(|(epoch, step)| epoch == 1 && step >= 3) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(Instant::now() < limit, "no checkpoint in the second epoch");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (epoch, step) = position().unwrap();
    assert!(epoch == 1 && step > 0, "killed at epoch {epoch}, batch {step}");
    assert!(!Path::new(&out).exists());

    ok(&a);
    assert_eq!(predictions_of(&reference, &valid), predictions_of(&out, &valid), "the resumed run differs");
}

/// `adaftr eval` reads its file chunk by chunk (this one spans many): its metrics are the
/// loaded file's, to the bit.
fn eval_streams_to_the_loaded_metrics(model: &str, data: &str) {
    let out = ok(&["eval", "--model", model, "--data", data, "--json"]);
    let streamed: serde_json::Value = serde_json::from_str(&stdout(out)).unwrap();
    let b = bundle::load(&std::fs::read(model).unwrap(), &Device::Cpu).unwrap();
    let (ds, _) =
        load_with_schema(std::fs::File::open(data).unwrap(), data, &b.schema, &LoadOptions::default()).unwrap();
    let p = predict(&b.model, &ds, 4096, &Device::Cpu).unwrap();
    let e = Evaluation::compute(&p, &ds);
    for (key, want) in
        [("auc_ctr", e.auc_ctr), ("auc_cvr", e.auc_cvr), ("auc_ctcvr", e.auc_ctcvr), ("gauc_ctr", e.gauc_ctr)]
    {
        assert_eq!(streamed[key].as_f64(), want, "{key}");
    }
    assert_eq!(streamed["rows"].as_u64(), Some(ds.len() as u64));
}
