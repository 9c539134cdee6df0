//! Helpers shared by the CLI integration tests: running the real binary, temporary
//! directories, generated data, and predictions of a bundle.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use adaftr_core::bundle;
use adaftr_core::data::{load_with_schema, LoadOptions};
use adaftr_core::evaluate::predict;
use candle_core::Device;

pub const BIN: &str = env!("CARGO_BIN_EXE_adaftr");

pub fn bin() -> Command {
    Command::new(BIN)
}

/// Runs adaftr; a panic message on stderr fails the test whatever the exit code.
pub fn run(args: &[&str]) -> Output {
    let out = bin().args(args).output().expect("spawn adaftr");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "adaftr panicked: {stderr}");
    out
}

pub fn ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(out.status.success(), "adaftr {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

pub fn stdout(out: Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs adaftr expecting failure; returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "adaftr {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A temporary directory removed on drop.
pub struct Tmp(pub PathBuf);
impl Tmp {
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("adaftr-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    pub fn path(&self, f: &str) -> String {
        self.0.join(f).display().to_string()
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Generated train and valid sets in `dir` (seeds 1 and 2, one world).
pub fn synth(dir: &Tmp, train_rows: usize, valid_rows: usize) -> (String, String) {
    let (train, valid) = (dir.path("train.csv"), dir.path("valid.csv"));
    ok(&["synth", "--rows", &train_rows.to_string(), "--seed", "1", "--out", &train]);
    ok(&["synth", "--rows", &valid_rows.to_string(), "--seed", "2", "--out", &valid]);
    (train, valid)
}

/// `adaftr train` with a quick model that has a tau (shared-bottom with the contrastive
/// term; 2 epochs of batches of 256; seed 5), then `extra` flags.
pub fn quick_train<'a>(train: &'a str, valid: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--train", train, "--valid", valid, "--out", out, "--model", "shared-bottom"];
    args.extend(["--cl", "transfer", "--epochs", "2", "--batch-size", "256", "--seed", "5"]);
    args.extend_from_slice(extra);
    args
}

/// pctr, pcvr, pctcvr, tau of every row of `data` under the bundle `model`, in memory.
pub fn predictions_of(model: &str, data: &str) -> Vec<[f32; 4]> {
    let b = bundle::load(&std::fs::read(model).unwrap(), &Device::Cpu).unwrap();
    let (ds, _) =
        load_with_schema(std::fs::File::open(data).unwrap(), data, &b.schema, &LoadOptions::default()).unwrap();
    let p = predict(&b.model, &ds, 1024, &Device::Cpu).unwrap();
    (0..ds.len()).map(|i| [p.pctr[i], p.pcvr[i], p.pctcvr[i], p.tau[i]]).collect()
}
