//! The demo's what-if batches predicted by the demo's default model, timed: the same work
//! natively and in wasm, so that the panels' inference can be profiled outside the browser.
//! Each batch is the instance with features changed, as the web app builds them: a what-if
//! sweep (64 values of one numeric), the sensitivity panel (every numeric at 3 values and
//! every categorical at up to 8 ids, in one batch) and the relatedness map (24 x 24 values
//! of two numerics); and, for scale, as many unrelated rows as the map.
//!
//! Natively, one thread:
//!     cargo build --release -p adaftr-core --example what_if
//!     RAYON_NUM_THREADS=1 target/release/examples/what_if
//! In wasm (simd128, as the web build), under Node.js's WASI:
//!     RUSTFLAGS="-C target-feature=+simd128" cargo build --release -p adaftr-core \
//!         --example what_if --target wasm32-wasip1
//!     node bench/wasi_run.mjs target/wasm32-wasip1/release/examples/what_if.wasm
//!
//! Arguments: milliseconds to repeat each batch for (default 1000), then the name of the
//! one batch to run (default all). Prints the median and the fastest time per batch.

use std::time::Instant;

use adaftr_core::bundle;
use adaftr_core::inference::Instance;
use candle_core::Device;

/// The model the demo opens with (the web app's asset).
const MODEL: &[u8] = include_bytes!("../../web/assets/default-model.safetensors");

fn main() -> adaftr_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let budget_ms: f64 = args.next().map_or(1000.0, |a| a.parse().expect("milliseconds"));
    let only = args.next();
    let model = bundle::load(MODEL, &Device::Cpu)?;
    let schema = &model.schema;
    let base = Instance {
        cat: schema.categorical.iter().map(|f| (f.cardinality() > 1) as u32).collect(),
        num: schema.numeric.iter().map(|f| 0.5 * (f.min + f.max)).collect(),
    };
    let range = |i: usize, n: usize| {
        let f = &schema.numeric[i];
        (0..n).map(move |j| f.min + (f.max - f.min) * j as f32 / (n - 1) as f32)
    };
    let with_num = |pairs: &[(usize, f32)]| {
        let mut inst = base.clone();
        for &(i, v) in pairs {
            inst.num[i] = v;
        }
        inst
    };
    let sweep: Vec<Instance> = range(0, 64).map(|v| with_num(&[(0, v)])).collect();
    let mut sensitivity = vec![base.clone()];
    for i in 0..schema.numeric.len() {
        sensitivity.extend(range(i, 3).map(|v| with_num(&[(i, v)])));
    }
    for (i, f) in schema.categorical.iter().enumerate() {
        sensitivity.extend((0..f.cardinality().min(8) as u32).map(|id| {
            let mut inst = base.clone();
            inst.cat[i] = id;
            inst
        }));
    }
    let map: Vec<Instance> = range(1, 24)
        .flat_map(|y| range(0, 24).map(move |x| (x, y)))
        .map(|(x, y)| with_num(&[(0, x), (1, y)]))
        .collect();
    let unrelated: Vec<Instance> = (0..map.len())
        .map(|r| Instance {
            cat: schema.categorical.iter().enumerate().map(|(i, f)| ((r * 7 + i) % f.cardinality()) as u32).collect(),
            num: schema
                .numeric
                .iter()
                .enumerate()
                .map(|(i, f)| f.min + (f.max - f.min) * ((r + 3 * i) % 11) as f32 / 10.0)
                .collect(),
        })
        .collect();
    for (name, batch) in [("sweep", &sweep), ("sensitivity", &sensitivity), ("map", &map), ("unrelated", &unrelated)] {
        if only.as_ref().is_some_and(|o| o != name) {
            continue;
        }
        let mut times = Vec::new();
        let start = Instant::now();
        while times.len() < 5 || start.elapsed().as_secs_f64() * 1e3 < budget_ms {
            let t = Instant::now();
            model.predict(batch)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{name:>12}: {:>4} rows, median {:.3} ms, fastest {:.3} ms ({} runs)",
            batch.len(),
            times[times.len() / 2],
            times[0],
            times.len()
        );
    }
    Ok(())
}
