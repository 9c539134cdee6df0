//! Memory bounds, measured with a counting global allocator: reading a CSV holds about one
//! line, whatever the input; loading a bundle or checkpoint allocates a small multiple of
//! the file's size, and a header that claims more than the file holds allocates nothing
//! of that claim; scoring a file holds one batch.
//!
//! One test in this binary, so no other test's allocations are counted.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

use adaftr_core::bundle;
use adaftr_core::config::Backbone;
use adaftr_core::data::{load_train, BadRows, LoadOptions, SchemaSpec, ScoreBatch, ScoreReader, MAX_LINE_BYTES};
use adaftr_core::schema::{CategoricalField, Side};
use adaftr_core::train::Trainer;
use candle_core::Device;
use common::*;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result and the peak of bytes allocated during it (above what
/// was allocated before).
fn peak<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst).saturating_sub(base))
}

const MIB: usize = 1 << 20;

fn csv_reading_holds_about_one_line() {
    let header = "id,u,i,x,y,click,conversion\n";
    let spec = SchemaSpec {
        categorical: vec!["u".into(), "i".into()],
        numeric: vec!["x".into(), "y".into()],
        group: Some("id".into()),
        ..SchemaSpec::default()
    };
    let opts = LoadOptions { spec: Some(spec), bad_rows: BadRows::Skip, ..LoadOptions::default() };
    // 64 MiB without a newline, then a good row: skipped in bounded memory.
    let input = header.as_bytes().chain(std::io::repeat(b'9').take(64 << 20)).chain(&b"\ns1,a,p,1,0.5,1,0\n"[..]);
    let (loaded, bytes) = peak(|| load_train(input, "f.csv", &opts));
    let (_, ds, report) = loaded.unwrap();
    assert_eq!((ds.len(), report.skipped), (1, 1));
    eprintln!("endless line: peak {bytes} bytes");
    assert!(bytes < 2 * MAX_LINE_BYTES + 2 * MIB, "reading a 64 MiB line allocated {bytes} bytes");
}

fn assert_load_bounded(what: &str, bytes: &[u8], load: impl Fn(&[u8]) -> bool) {
    let (ok, used) = peak(|| load(bytes));
    assert!(ok, "{what} did not load");
    let ratio = used as f64 / bytes.len() as f64;
    eprintln!("{what}: {} byte file, peak {used} bytes ({ratio:.2}x)", bytes.len());
    assert!(used <= 5 * bytes.len() + MIB, "{what}: loading a {} byte file allocated {used} bytes", bytes.len());

    // A header claiming more than the file: refused without allocating the claim.
    let mut lying = bytes.to_vec();
    lying[..8].copy_from_slice(&(u64::MAX / 3).to_le_bytes());
    let (ok, used) = peak(|| load(&lying));
    assert!(!ok);
    assert!(used < MIB, "{what}: a lying header allocated {used} bytes");
    // Truncated anywhere: refused, and never more than loading the whole file.
    for cut in [9, bytes.len() / 3, bytes.len() - 7] {
        let (ok, used) = peak(|| load(&bytes[..cut]));
        assert!(!ok);
        assert!(used <= 5 * bytes.len() + MIB, "{what}: a truncated file allocated {used} bytes");
    }
}

fn bundle_and_checkpoint_loading_is_proportional_to_file_size() {
    let dev = Device::Cpu;
    // Weight-heavy: a 50k-value vocabulary with 8-dim embeddings (~1.6 MB of f32).
    let mut schema = tiny_schema();
    schema.categorical[0] = CategoricalField::new("a", Side::User, (0..50_000).map(|i| format!("{i}")).collect());
    let mut cfg = small_config(Backbone::SharedBottom);
    cfg.model.embedding_dim = 8;
    let t = Trainer::new(cfg, schema, &dev).unwrap();
    let b = t.bundle_bytes(&t.summary()).unwrap();
    assert_load_bounded("bundle", &b, |bytes| bundle::load(bytes, &dev).is_ok());
    let c = t.checkpoint_bytes().unwrap();
    assert_load_bounded("checkpoint", &c, |bytes| Trainer::from_checkpoint(bytes, &dev).is_ok());

    // Metadata-heavy: a vocabulary of 200k one-character-ish values with 1-dim embeddings,
    // where the parsed schema (strings and index) outweighs the JSON it came from.
    let mut schema = tiny_schema();
    schema.categorical[1] = CategoricalField::new("b", Side::User, (0..200_000).map(|i| format!("{i:x}")).collect());
    let mut cfg = small_config(Backbone::SharedBottom);
    cfg.model.embedding_dim = 1;
    let t = Trainer::new(cfg, schema, &dev).unwrap();
    let b = t.bundle_bytes(&t.summary()).unwrap();
    let (ok, used) = peak(|| bundle::load(&b, &dev).is_ok());
    assert!(ok);
    let ratio = used as f64 / b.len() as f64;
    eprintln!("vocabulary-heavy bundle: {} byte file, peak {used} bytes ({ratio:.2}x)", b.len());
    // Each short vocabulary value costs a String and an index entry: a bounded multiple.
    assert!(used <= 16 * b.len() + MIB, "vocabulary-heavy bundle: {} byte file, {used} bytes", b.len());
}

/// Rows of `tiny_schema`'s columns generated on the fly: a file of any length that is never
/// in memory.
struct Rows {
    next: usize,
    total: usize,
    pending: Vec<u8>,
}

impl Read for Rows {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.len() < buf.len() && self.next < self.total {
            let i = self.next;
            if i == 0 {
                self.pending.extend_from_slice(b"id,a,b,c,x,y\n");
            }
            let line = format!("row{i},v{},v{},v{},{},{}\n", i % 4, i % 6, i % 3, (i % 97) as f32 / 97.0, 0.5);
            self.pending.extend_from_slice(line.as_bytes());
            self.next += 1;
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

/// Scoring a file (what `adaftr predict` does) holds one batch of rows and predictions,
/// not the file: 400k rows would be 8 MB of model inputs alone.
fn scoring_holds_one_batch() {
    let dev = Device::Cpu;
    let t = Trainer::new(small_config(Backbone::SharedBottom), tiny_schema(), &dev).unwrap();
    let b = bundle::load(&t.bundle_bytes(&t.summary()).unwrap(), &dev).unwrap();
    let rows = 400_000;
    let input = Rows { next: 0, total: rows, pending: Vec::new() };
    let keep = vec!["id".to_string()];
    let (scored, bytes) = peak(|| {
        let mut reader = ScoreReader::new(input, "big.csv", &b.schema, &keep, &LoadOptions::default()).unwrap();
        let (mut batch, mut n, mut sum) = (ScoreBatch::default(), 0, 0.0f64);
        while reader.next_batch(&mut batch, 512).unwrap() {
            let p = b.predict_inputs(&batch.inputs).unwrap();
            sum += p.iter().map(|q| q.pctr as f64).sum::<f64>();
            n += p.len();
        }
        (n, sum)
    });
    assert_eq!(scored.0, rows);
    assert!(scored.1 > 0.0);
    eprintln!("scoring {rows} rows in batches of 512: peak {bytes} bytes");
    assert!(bytes < 2 * MIB, "scoring {rows} rows allocated {bytes} bytes at once");
}

#[test]
fn memory_is_bounded() {
    csv_reading_holds_about_one_line();
    bundle_and_checkpoint_loading_is_proportional_to_file_size();
    scoring_holds_one_batch();
}
