//! Property tests of the CSV path: arbitrary bytes and mutated valid files give rows or an
//! error naming the file, line and column, never a panic; lines and fields are bounded.
//!
//! The checks are the CSV fuzz target's (`fuzz/src/lib.rs`, included below), so CI runs
//! what the fuzzer runs, on fewer and smaller inputs. Fixed seed, no persistence files:
//! a failure reproduces with the same test, and a case worth keeping goes into
//! `REGRESSIONS` by hand.

#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::io::Read;
use std::sync::OnceLock;

use adaftr_core::data::{generate, load_train, load_with_schema, BadRows, LoadOptions, SynthConfig, MAX_LINE_BYTES};
use adaftr_core::error::Error;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0xada_f7e),
        max_shrink_iters: 2048,
        ..Config::default()
    }
}

/// Inputs found by fuzzing (or by hand) that once broke a guarantee; replayed every run.
const REGRESSIONS: &[&[u8]] = &[
    b"",
    b"\n",
    b"\xef\xbb\xbf",
    b"\x1f\x8b",
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
    b"click\n1",
    b"click,purchase\n1,1\n0,1",
    b"\"",
    b"a,\"b\n\"c\"\n",
    b"s1,a,p,1,0.5,0,0,extra",
    b"s1,a,p,\xff,0.5,0,0",
    b"s1,a,\xc3,1,0.5,0,0",
    b"s1,a,p,1e39,0.5,0,0",
    b"s1,a,p,nan,0.5,0,0",
    b"s1,a,p,1,0.5,0,1",
    b"s1,a,p,1,0.5,2,0",
    b"s1,a,p,3.4e38,-3.4e38,0,0\ns1,a,p,-3.4e38,3.4e38,0,0",
    b"\r\n\r\n,,,,,,\r\n",
];

#[test]
fn regressions() {
    for input in REGRESSIONS {
        targets::csv(input);
    }
}

/// A small valid AliExpress file (header + 6 rows) from the generator.
fn aliexpress_file() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let mut out = Vec::new();
        let cfg = SynthConfig { rows: 6, compute_auc: false, ..SynthConfig::default() };
        generate(&cfg, &mut out, std::io::sink()).unwrap();
        out
    })
}

/// The valid rows of the explicit layout, as the body of a file.
fn rows_text() -> Vec<u8> {
    let mut s = targets::CSV_ROWS.join("\n").into_bytes();
    s.push(b'\n');
    s
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, u8),
    Delete(usize),
    Replace(usize, u8),
    /// Copy a range somewhere else (duplicates fields, lines, quotes).
    Splice {
        from: usize,
        len: usize,
        to: usize,
    },
    Truncate(usize),
}

/// Bytes that matter to the parser, weighted above random ones.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(b",\n\r\"01.-+eEnaifNI \t\xef\xbb\xbf\xc3\xff\x00".to_vec()),
        1 => any::<u8>(),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    let pos = any::<prop::sample::Index>();
    prop_oneof![
        (pos.clone(), interesting_byte()).prop_map(|(i, b)| Edit::Insert(i.index(usize::MAX), b)),
        pos.clone().prop_map(|i| Edit::Delete(i.index(usize::MAX))),
        (pos.clone(), interesting_byte()).prop_map(|(i, b)| Edit::Replace(i.index(usize::MAX), b)),
        (pos.clone(), 1usize..40, pos.clone()).prop_map(|(f, len, t)| Edit::Splice {
            from: f.index(usize::MAX),
            len,
            to: t.index(usize::MAX)
        }),
        pos.prop_map(|i| Edit::Truncate(i.index(usize::MAX))),
    ]
}

fn apply(mut v: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = v.len();
        match *e {
            Edit::Insert(i, b) => v.insert(i % (n + 1), b),
            Edit::Delete(i) if n > 0 => {
                v.remove(i % n);
            }
            Edit::Replace(i, b) if n > 0 => v[i % n] = b,
            Edit::Splice { from, len, to } if n > 0 => {
                let from = from % n;
                let piece: Vec<u8> = v[from..(from + len).min(n)].to_vec();
                let to = to % (n + 1);
                v.splice(to..to, piece);
            }
            Edit::Truncate(i) => v.truncate(i % (n + 1)),
            _ => {}
        }
    }
    v
}

proptest! {
    #![proptest_config(config(256))]

    /// Any bytes at all.
    #[test]
    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..400)) {
        targets::csv(&data);
    }

    /// Bytes drawn mostly from the CSV alphabet, so rows get past the column count.
    #[test]
    fn csv_alphabet(data in prop::collection::vec(interesting_byte(), 0..400)) {
        targets::csv(&data);
    }

    /// A valid file with a few edits: through detection (AliExpress) and under the explicit
    /// layout.
    #[test]
    fn mutated_valid_files(edits in prop::collection::vec(edit(), 1..6)) {
        targets::csv(&apply(aliexpress_file().to_vec(), &edits));
        targets::csv(&apply(rows_text(), &edits));
    }
}

const NUMERIC_COLUMNS: [&str; 2] = ["x", "y"];

proptest! {
    #![proptest_config(config(64))]

    /// A bad value in one cell is reported at exactly that line and column, and with
    /// `--bad-rows skip` only that row is lost.
    #[test]
    fn bad_cell_is_located(row in 0..targets::CSV_ROWS.len(), col in 0..2usize,
                           bad in prop::sample::select(vec!["", "x", "1,5", "nan", "-inf", "1e40", "0x10", "\u{e9}"])) {
        let mut rows: Vec<String> = targets::CSV_ROWS.iter().map(|r| r.to_string()).collect();
        let mut fields: Vec<String> = rows[row].split(',').map(str::to_string).collect();
        fields[3 + col] = if bad.contains(',') { format!("\"{bad}\"") } else { bad.to_string() };
        rows[row] = fields.join(",");
        let text = format!("{}\n{}\n", targets::CSV_HEADER, rows.join("\n"));
        let opts = LoadOptions { spec: Some(targets::csv_spec()), ..LoadOptions::default() };
        match load_train(text.as_bytes(), "f.csv", &opts) {
            Err(Error::Data { location, .. }) => {
                prop_assert_eq!(location.file, "f.csv");
                prop_assert_eq!(location.line, row as u64 + 2);
                prop_assert_eq!(location.column.as_deref(), Some(NUMERIC_COLUMNS[col]));
            }
            other => prop_assert!(false, "expected a data error, got {:?}", other.map(|r| r.2)),
        }
        let skip = LoadOptions { bad_rows: BadRows::Skip, ..opts };
        let (_, ds, report) = load_train(text.as_bytes(), "f.csv", &skip).unwrap();
        prop_assert_eq!((ds.len(), report.skipped), (targets::CSV_ROWS.len() - 1, 1));
    }
}

/// An endless line (no newline in 48 MiB) is refused after at most one line's worth of
/// reading, whatever its length; with skip, the reader passes over it in bounded memory
/// (the allocation bound itself is checked in `bounded_memory.rs`).
#[test]
fn huge_lines_and_fields_are_bounded() {
    let header = format!("{}\n", targets::CSV_HEADER);
    let opts = LoadOptions { spec: Some(targets::csv_spec()), ..LoadOptions::default() };

    // One huge field.
    let mut text = header.clone().into_bytes();
    text.extend_from_slice(b"s1,a,p,1,0.5,0,0\ns1,");
    text.extend(std::iter::repeat_n(b'u', MAX_LINE_BYTES + 10));
    text.extend_from_slice(b",p,1,0.5,0,0\ns2,b,q,2,0.5,1,1\n");
    match load_train(&text[..], "f.csv", &opts) {
        Err(Error::Data { location, reason, .. }) => {
            assert_eq!((location.file.as_str(), location.line), ("f.csv", 3));
            assert!(reason.contains("line too long"), "{reason}");
        }
        other => panic!("expected a line-length error, got {:?}", other.map(|r| r.2)),
    }
    let skip = LoadOptions { bad_rows: BadRows::Skip, ..opts.clone() };
    let (_, ds, report) = load_train(&text[..], "f.csv", &skip).unwrap();
    assert_eq!((ds.len(), report.skipped), (2, 1));

    // A line that never ends: the error comes after reading about one line's worth.
    let counted = std::cell::Cell::new(0usize);
    struct Counting<'a, R>(R, &'a std::cell::Cell<usize>);
    impl<R: Read> Read for Counting<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.set(self.1.get() + n);
            Ok(n)
        }
    }
    let endless = header.as_bytes().chain(std::io::repeat(b'7').take(48 << 20));
    let e = load_train(Counting(endless, &counted), "f.csv", &opts).map(|r| r.2).unwrap_err();
    assert!(e.to_string().contains("f.csv:2") && e.to_string().contains("line too long"), "{e}");
    assert!(counted.get() < 3 * MAX_LINE_BYTES, "read {} bytes before refusing the line", counted.get());

    // The same under skip: the whole stream is read (and dropped), then "no valid rows".
    let endless = header.as_bytes().chain(std::io::repeat(b'7').take(48 << 20));
    let e = load_train(endless, "f.csv", &skip).map(|r| r.2).unwrap_err();
    assert!(matches!(&e, Error::Input { reason, .. } if reason.contains("1 skipped")), "{e}");

    // A header that never ends.
    let e = load_train(std::io::repeat(b'h').take(8 << 20), "f.csv", &opts).map(|r| r.2).unwrap_err();
    assert!(matches!(&e, Error::Input { file, reason } if file == "f.csv" && reason.contains("longer than")), "{e}");

    // Encoding with a fitted schema takes the same path.
    let schema = targets::csv_schema();
    let e = load_with_schema(&text[..], "f.csv", schema, &opts).unwrap_err();
    assert!(e.to_string().contains("f.csv:3"), "{e}");
}

/// Seeds for the CSV fuzz target: the valid files mutated above. Run by scripts/fuzz.sh
/// with `ADAFTR_FUZZ_SEEDS=<dir>`.
#[test]
#[ignore = "writes fuzz seeds; run by scripts/fuzz.sh"]
fn write_fuzz_seeds() {
    let dir = std::path::PathBuf::from(std::env::var("ADAFTR_FUZZ_SEEDS").expect("set ADAFTR_FUZZ_SEEDS")).join("csv");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("aliexpress.csv"), aliexpress_file()).unwrap();
    std::fs::write(dir.join("rows.csv"), rows_text()).unwrap();
    let ccp = "click,purchase,101,121,205,D109_14\n1,0,u1,a,i1,0.5\n1,1,u2,b,i2,1.5\n0,0,u1,a,i3,0\n";
    std::fs::write(dir.join("aliccp.csv"), ccp).unwrap();
    for (i, r) in REGRESSIONS.iter().enumerate() {
        std::fs::write(dir.join(format!("regression-{i}")), r).unwrap();
    }
}

/// The fallback fuzzer where cargo-fuzz cannot run: random and mutated inputs through the
/// same target for `ADAFTR_FUZZ_SECONDS` (default 60), with a random seed (printed on
/// failure with the minimal input).
#[test]
#[ignore = "time-bounded fuzzing; run by scripts/fuzz.sh"]
fn fuzz_for_a_while() {
    use proptest::test_runner::TestRunner;
    let secs: u64 = std::env::var("ADAFTR_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..4096),
        prop::collection::vec(interesting_byte(), 0..4096),
        prop::collection::vec(edit(), 1..20).prop_map(|e| apply(aliexpress_file().to_vec(), &e)),
        prop::collection::vec(edit(), 1..20).prop_map(|e| apply(rows_text(), &e)),
    ];
    let mut rounds = 0u64;
    while std::time::Instant::now() < end {
        let cfg = Config { cases: 500, failure_persistence: None, rng_seed: RngSeed::Random, ..Config::default() };
        TestRunner::new(cfg)
            .run(&strategy, |data| {
                targets::csv(&data);
                Ok(())
            })
            .unwrap();
        rounds += 1;
    }
    eprintln!("csv: {} inputs in {secs} s, no failure", rounds * 500);
}
