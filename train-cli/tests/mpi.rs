//! Data-parallel training under `mpirun` (the `mpi` feature; scripts/test.sh builds it and
//! installs Open MPI): two ranks train the model one process trains, and a rank killed
//! mid-run ends the job with a checkpoint that resumes to the uninterrupted result. Without
//! the feature, a binary launched as one of several ranks refuses to train alone.

#[cfg(feature = "mpi")]
use std::process::{Command, Output};

mod common;
use common::*;

/// Run with the environment of a process launched as one of two ranks.
#[cfg(not(feature = "mpi"))]
#[test]
fn without_the_feature_a_rank_refuses_to_train_alone() {
    let dir = Tmp::new("mpi-refuse");
    let (train, valid) = synth(&dir, 300, 100);
    let out = dir.path("m.safetensors");
    let res = bin().args(quick_train(&train, &valid, &out, &[])).env("OMPI_COMM_WORLD_SIZE", "2").output().unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success() && err.contains("without the `mpi` feature"), "{err}");
    assert!(!std::path::Path::new(&out).exists());
}

/// `mpirun -np <ranks> adaftr <args>`, allowed to run as root (CI containers are), with
/// `tag` in the ranks' environment so that a test can find them.
#[cfg(feature = "mpi")]
fn mpirun(ranks: usize, args: &[&str], tag: &str) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["-np", &ranks.to_string(), "--oversubscribe", BIN]).args(args);
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1").env("ADAFTR_TEST_TAG", tag);
    c
}

#[cfg(feature = "mpi")]
fn succeeded(out: Output) -> Output {
    assert!(out.status.success(), "mpirun failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[cfg(feature = "mpi")]
fn largest_difference(a: &[[f32; 4]], b: &[[f32; 4]]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs())).fold(0.0, f32::max)
}

/// `adaftr train` of [`quick_train`]'s model for one epoch: a dozen steps, so that the
/// comparison with one process is not blurred by Adam, which turns float-rounding
/// differences in near-zero gradients into full-size steps as training goes on.
#[cfg(feature = "mpi")]
fn one_epoch<'a>(train: &'a str, valid: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--train", train, "--valid", valid, "--out", out, "--model", "shared-bottom"];
    args.extend(["--cl", "transfer", "--epochs", "1", "--batch-size", "256", "--seed", "5"]);
    args.extend_from_slice(extra);
    args
}

#[cfg(feature = "mpi")]
#[test]
fn two_ranks_train_the_model_one_process_trains() {
    let dir = Tmp::new("mpi-same");
    // Batches of 256 with a last one of 185 rows, which the ranks share unevenly, and the
    // contrastive term (`transfer`), whose in-batch negatives span both ranks' rows.
    let (train, valid) = synth(&dir, 3_001, 500);
    for (what, extra) in [("loaded", &[][..]), ("streamed", &["--stream", "--shuffle-buffer", "700"][..])] {
        // Streamed, every rank reads the whole file through the same shuffle.
        let (one, two) = (dir.path(&format!("one-{what}.safetensors")), dir.path(&format!("two-{what}.safetensors")));
        ok(&one_epoch(&train, &valid, &one, extra));
        let out = succeeded(mpirun(2, &one_epoch(&train, &valid, &two, extra), what).output().unwrap());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("data-parallel over 2 ranks") && err.contains("gradient sum"), "{err}");
        let d = largest_difference(&predictions_of(&one, &valid), &predictions_of(&two, &valid));
        assert!(d < 1e-4, "{what}: two ranks' predictions differ from one process's by {d:e}");
    }
}

/// The pid of the adaftr process that is rank `rank` of the job whose environment has `tag`.
#[cfg(all(feature = "mpi", target_os = "linux"))]
fn rank_pid(tag: &str, rank: usize) -> Option<i32> {
    let want = [format!("ADAFTR_TEST_TAG={tag}"), format!("OMPI_COMM_WORLD_RANK={rank}")];
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        let env = std::fs::read(e.path().join("environ")).ok()?;
        let vars: Vec<&[u8]> = env.split(|&b| b == 0).collect();
        let has = |v: &String| vars.contains(&v.as_bytes());
        (comm.trim() == "adaftr" && want.iter().all(has)).then_some(pid)
    })
}

#[cfg(all(feature = "mpi", target_os = "linux"))]
#[test]
fn a_killed_rank_ends_the_job_and_its_checkpoint_resumes_to_the_same_model() {
    use std::time::{Duration, Instant};

    let dir = Tmp::new("mpi-kill");
    let (train, valid) = synth(&dir, 40_000, 500);
    let (whole, resumed) = (dir.path("whole.safetensors"), dir.path("resumed.safetensors"));
    let ckpt = dir.path("ckpt");
    let flags = ["--checkpoint-dir", &ckpt, "--checkpoint-every", "10"];
    succeeded(mpirun(2, &quick_train(&train, &valid, &whole, &[]), "whole").output().unwrap());

    let args = quick_train(&train, &valid, &resumed, &flags);
    let child = mpirun(2, &args, "kill").stderr(std::process::Stdio::piped()).spawn().unwrap();
    let checkpoint = std::path::Path::new(&ckpt).join("checkpoint.safetensors");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !checkpoint.exists() {
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = rank_pid("kill", 1).expect("rank 1 is running");
    // SAFETY: a plain kill(2) of a process this test started (through mpirun).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the job went on without rank 1:\n{err}");
    assert!(err.contains("rank 1") && err.contains("signal 9"), "mpirun does not say which rank died:\n{err}");
    assert!(!std::path::Path::new(&resumed).exists(), "a killed job wrote a bundle");

    let mut again = args.clone();
    again.push("--resume");
    let out = succeeded(mpirun(2, &again, "resume").output().unwrap());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("resuming from"), "{err}");
    let d = largest_difference(&predictions_of(&whole, &valid), &predictions_of(&resumed, &valid));
    assert!(d < 1e-6, "the resumed job's model differs from the uninterrupted one's by {d:e}");
}
