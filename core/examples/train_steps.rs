//! Training steps of the default configuration on generated rows, timed: the same work
//! natively and in wasm, so that the browser's training speed can be profiled outside the
//! browser (V8 runs it under Node.js as it does in Chromium).
//!
//! Natively, one thread, with the allocator settings `adaftr` makes at start-up
//! (train-cli/src/runtime.rs; without them page faults cost a third of the speed):
//!     cargo build --release -p adaftr-core --example train_steps
//!     MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=536870912 MALLOC_ARENA_MAX=1 \
//!         RAYON_NUM_THREADS=1 target/release/examples/train_steps 20
//! In wasm (simd128, as the web build), under Node.js's WASI:
//!     RUSTFLAGS="-C target-feature=+simd128" cargo build --release -p adaftr-core \
//!         --example train_steps --target wasm32-wasip1
//!     node bench/wasi_run.mjs target/wasm32-wasip1/release/examples/train_steps.wasm 20
//! and with `node --cpu-prof --cpu-prof-dir=prof bench/wasi_run.mjs ...` for a profile of
//! named wasm functions (`bench/cpuprofile_top.py prof/*.cpuprofile` summarises it).
//!
//! Arguments: timed steps (default 20), then batch size (default the config's).
//!
//! Speeds are rows per second of this thread's CPU time (the process's in wasm, where
//! Node's compiler and collector threads count too), so that other work on a busy machine
//! does not change them much; wall-clock speed is printed beside it.

use std::time::Instant;

use adaftr_core::config::Config;
use adaftr_core::data::{generate, load_train, LoadOptions, SynthConfig};
use adaftr_core::train::Trainer;
use candle_core::Device;

fn main() -> adaftr_core::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("arguments are counts"));
    let steps = args.next().unwrap_or(20);
    let mut config = Config::default();
    let batch = args.next().unwrap_or(config.train.batch_size);
    config.train.batch_size = batch;
    let warmup = 3;
    let rows = batch * 8;
    let mut csv = Vec::new();
    generate(&SynthConfig { rows, seed: 7, compute_auc: false, ..SynthConfig::default() }, &mut csv, std::io::sink())?;
    let (schema, data, _) = load_train(&csv[..], "generated.csv", &LoadOptions::default())?;
    let dev = Device::Cpu;
    let mut trainer = Trainer::new(config, schema, &dev)?;
    let batches = data.len() / batch;
    let mut secs = Vec::with_capacity(steps);
    let mut wall = 0.0;
    for k in 0..warmup + steps {
        let start = (k % batches) * batch;
        let (t, c) = (Instant::now(), cpu_seconds());
        let b = data.range_batch(start, batch, &dev)?;
        let losses = trainer.train_step(&b)?;
        if k >= warmup {
            secs.push(cpu_seconds() - c);
            wall += t.elapsed().as_secs_f64();
        }
        if k + 1 == warmup + steps {
            println!("last loss {:.6}", losses.total);
        }
    }
    secs.sort_by(f64::total_cmp);
    let total: f64 = secs.iter().sum();
    println!(
        "batch {batch}, {steps} steps: {:.0} rows/s of CPU time ({:.0} of wall-clock time), median step {:.1} ms CPU, \
         parameters {}",
        (batch * steps) as f64 / total,
        (batch * steps) as f64 / wall,
        1e3 * secs[secs.len() / 2],
        trainer.params().numel()
    );
    Ok(())
}

/// CPU time of this thread (natively, Linux) or process (WASI), in seconds.
#[cfg(target_os = "linux")]
fn cpu_seconds() -> f64 {
    // The first field is the time on the CPU in nanoseconds.
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("/proc/thread-self/schedstat");
    s.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()).expect("a time in ns") * 1e-9
}

#[cfg(target_os = "wasi")]
fn cpu_seconds() -> f64 {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        fn clock_time_get(id: u32, precision: u64, time: *mut u64) -> u16;
    }
    const PROCESS_CPUTIME: u32 = 2;
    let mut ns = 0u64;
    // SAFETY: the WASI call writes one u64 through a valid pointer.
    let errno = unsafe { clock_time_get(PROCESS_CPUTIME, 1, &mut ns) };
    assert_eq!(errno, 0, "clock_time_get");
    ns as f64 * 1e-9
}

#[cfg(not(any(target_os = "linux", target_os = "wasi")))]
fn cpu_seconds() -> f64 {
    // No CPU clock read here: wall-clock time.
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}
