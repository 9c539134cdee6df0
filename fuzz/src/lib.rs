//! The bodies of the fuzz targets, shared with the property tests.
//!
//! `fuzz_targets/csv.rs` and `fuzz_targets/bundle.rs` call [`csv`] and [`bundle`] on
//! libFuzzer's input; `core/tests/prop_csv.rs` and `core/tests/prop_bundle.rs` include this
//! very file (`#[path = "../../fuzz/src/lib.rs"] mod targets;`) and call the same functions
//! on proptest's inputs, so whatever a fuzzer can check, CI checks too, and a crash found
//! by the fuzzer is replayed by adding its bytes to the tests' regression lists.
//!
//! Each function panics (a fuzz crash, a test failure) when the code under test panics or
//! when its answer breaks a documented guarantee: an error must name the input and, for a
//! data row, the 1-based line (and the column when one column is at fault); accepted rows
//! must be valid; a bundle that loads must predict.
#![allow(dead_code)]

use std::sync::OnceLock;

use adaftr_core::bundle;
use adaftr_core::data::{
    load_train, load_with_schema, BadRows, Dataset, LoadOptions, SchemaSpec, ScoreBatch, ScoreReader, ShuffleStream,
};
use adaftr_core::error::Error;
use adaftr_core::inference::Instance;
use adaftr_core::schema::{NormKind, Schema};
use adaftr_core::train::Trainer;
use candle_core::Device;

/// The label the CSV targets give their input; every error must name it.
pub const CSV_LABEL: &str = "fuzz.csv";

/// The header of the explicit-schema layout the CSV target parses rows under.
pub const CSV_HEADER: &str = "id,u,i,x,y,click,conversion";

/// A few valid rows under [`CSV_HEADER`] (mutated by the property tests).
pub const CSV_ROWS: [&str; 6] = [
    "s1,a,p,1,0.5,0,0",
    "s1,b,q,2,0.5,1,0",
    "s2,a,p,3,0.5,1,1",
    "s2,c,,4,0.5,0,0",
    "s3,a,q,2.5e1,-0.5,0,0",
    "s1,\"b\",p,3,0.5,1.0,0.0",
];

/// The explicit schema spec for [`CSV_HEADER`].
pub fn csv_spec() -> SchemaSpec {
    SchemaSpec {
        categorical: vec!["u".into(), "i".into()],
        numeric: vec!["x".into(), "y".into()],
        group: Some("id".into()),
        ..SchemaSpec::default()
    }
}

/// The schema fitted on [`CSV_ROWS`], for the encoding paths.
pub fn csv_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let text = std::iter::once(CSV_HEADER).chain(CSV_ROWS).collect::<Vec<_>>().join("\n");
        let opts = LoadOptions { spec: Some(csv_spec()), norm: NormKind::Standardize, ..LoadOptions::default() };
        load_train(text.as_bytes(), "rows", &opts).expect("the reference rows load").0
    })
}

/// Lines in `bytes` as a line reader counts them (a final line without `\n` counts).
fn line_count(bytes: &[u8]) -> u64 {
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    newlines + u64::from(!bytes.is_empty() && !bytes.ends_with(b"\n"))
}

/// Checks an error from reading `input` (which may be gzip: then line numbers are in the
/// decompressed text, and only an upper bound we cannot know, so `lines` is `None`).
fn check_error(e: &Error, lines: Option<u64>, header: Option<&[&str]>) {
    let text = e.to_string();
    assert!(text.contains(CSV_LABEL), "the error does not name the file: {text}");
    match e {
        Error::Data { location, value, reason } => {
            assert_eq!(location.file, CSV_LABEL);
            assert!(location.line >= 2, "a row error on the header line: {text}");
            if let Some(n) = lines {
                assert!(location.line <= n, "line {} of a {n}-line input: {text}", location.line);
            }
            assert!(text.contains(&format!("{CSV_LABEL}:{}", location.line)), "{text}");
            if let (Some(col), Some(header)) = (&location.column, header) {
                assert!(header.contains(&col.as_str()), "column `{col}` is not in the header: {text}");
            }
            // Only whole-line problems may leave the column out (a quote left open in a
            // field past the last column is one).
            let whole_line = ["line too long", "columns, found", "quote"];
            assert!(
                location.column.is_some() || whole_line.iter().any(|w| reason.contains(w)),
                "a value error without a column: {text}"
            );
            if let Some(v) = value {
                assert!(v.len() <= 64 + 3, "the quoted value is not truncated: {} bytes", v.len());
            }
        }
        Error::Input { file, .. } | Error::Io { file, .. } => assert_eq!(file, CSV_LABEL),
        other => panic!("unexpected error kind for CSV input: {other:?}"),
    }
}

/// Checks rows a load accepted: counts agree, ids within their tables, numbers finite,
/// no conversion without a click, at most one row per line.
fn check_rows(ds: &Dataset, rows: usize, lines: Option<u64>, cardinalities: Option<&[usize]>) {
    assert_eq!(ds.len(), rows);
    if let Some(n) = lines {
        assert!(rows as u64 <= n.saturating_sub(1), "{rows} rows from {n} lines");
    }
    assert_eq!(ds.cat.len(), ds.len() * ds.n_cat);
    assert_eq!(ds.num.len(), ds.len() * ds.n_num);
    assert!(ds.num.iter().all(|x| x.is_finite()), "a non-finite numeric value was accepted");
    for i in 0..ds.len() {
        assert!(!ds.conversion.get(i) || ds.click.get(i), "row {i}: conversion without click");
    }
    if let Some(cards) = cardinalities {
        for row in ds.cat.chunks_exact(ds.n_cat.max(1)).take(ds.len()) {
            for (&id, &card) in row.iter().zip(cards) {
                assert!((id as usize) < card, "id {id} outside a table of {card}");
            }
        }
    }
    if let Some(g) = &ds.group {
        assert_eq!(g.len(), ds.len());
    }
}

/// The CSV target: `data` read as a whole file (format detection), and as rows under a
/// known header (explicit schema), through every loader, with both bad-row policies.
pub fn csv(data: &[u8]) {
    let gz = data.starts_with(&[0x1f, 0x8b]);
    let lines = (!gz).then(|| line_count(data));
    let default = LoadOptions::default();
    match load_train(data, CSV_LABEL, &default) {
        Ok((schema, ds, report)) => {
            check_rows(&ds, report.rows, lines, Some(&schema.cardinalities()));
        }
        Err(e) => check_error(&e, lines, None),
    }

    let mut with_header = CSV_HEADER.as_bytes().to_vec();
    with_header.push(b'\n');
    with_header.extend_from_slice(data);
    let lines = line_count(&with_header);
    let header: Vec<&str> = CSV_HEADER.split(',').collect();
    for policy in [BadRows::Error, BadRows::Skip] {
        let opts = LoadOptions {
            spec: Some(csv_spec()),
            bad_rows: policy,
            norm: NormKind::Standardize,
            ..LoadOptions::default()
        };
        match load_train(&with_header[..], CSV_LABEL, &opts) {
            Ok((schema, ds, report)) => {
                check_rows(&ds, report.rows, Some(lines), Some(&schema.cardinalities()));
                assert!(report.rows + report.skipped <= lines as usize);
                assert!(policy == BadRows::Skip || report.skipped == 0);
            }
            Err(e) => check_error(&e, Some(lines), Some(&header)),
        }
        let schema = csv_schema();
        let labelled = load_with_schema(&with_header[..], CSV_LABEL, schema, &opts);
        match &labelled {
            Ok((ds, report)) => check_rows(ds, report.rows, Some(lines), Some(&schema.cardinalities())),
            Err(e) => check_error(e, Some(lines), Some(&header)),
        }
        match score(&with_header[..], schema, &opts) {
            Ok(scored) => {
                // Scoring reads the same features and no labels, so it accepts every row
                // the labelled load accepts (and maybe more) and encodes them identically.
                if let (Ok((ds, _)), BadRows::Error) = (&labelled, policy) {
                    assert_eq!((&scored.cat, &scored.num), (&ds.cat, &ds.num), "scoring encodes differently");
                }
                assert!(scored.num.iter().all(|x| x.is_finite()));
                assert_eq!(scored.ids.len() * 2, scored.cat.len(), "one kept id per row");
            }
            Err(e) => {
                check_error(&e, Some(lines), Some(&header));
                assert!(labelled.is_err(), "scoring refused what the labelled load read: {e}");
            }
        }
        // The same rows without their label columns score the same.
        let unlabelled = drop_columns(&with_header, &[5, 6]);
        if let (Ok(a), Ok(b), BadRows::Error) =
            (score(&with_header[..], schema, &opts), score(&unlabelled[..], schema, &opts), policy)
        {
            assert_eq!(a, b, "dropping the label columns changed the model inputs");
        }
        let streamed = ShuffleStream::new(&with_header[..], CSV_LABEL, schema, &opts, 4, 3, 1).and_then(|mut s| {
            let mut n = 0;
            while let Some(chunk) = s.next_chunk()? {
                assert!(chunk.len() <= 3);
                check_rows(&chunk, chunk.len(), None, Some(&schema.cardinalities()));
                n += chunk.len();
            }
            assert_eq!(n, s.report().rows);
            Ok(n)
        });
        if let Err(e) = streamed {
            check_error(&e, Some(lines), Some(&header));
        }
    }
}

/// Every row of some input as [`ScoreReader`] encodes it.
#[derive(Debug, PartialEq)]
struct Scored {
    cat: Vec<u32>,
    num: Vec<f32>,
    /// The passed-through `id` column.
    ids: Vec<String>,
}

/// Scores `data` in batches of 2, passing the `id` column through.
fn score(data: &[u8], schema: &Schema, opts: &LoadOptions) -> Result<Scored, Error> {
    let mut reader = ScoreReader::new(data, CSV_LABEL, schema, &["id".to_string()], opts)?;
    let mut batch = ScoreBatch::default();
    let mut out = Scored { cat: Vec::new(), num: Vec::new(), ids: Vec::new() };
    while reader.next_batch(&mut batch, 2)? {
        assert!(batch.len() <= 2);
        out.cat.extend_from_slice(batch.inputs.cat());
        out.num.extend_from_slice(batch.inputs.num());
        out.ids.extend((0..batch.len()).map(|i| batch.kept(i)[0].clone()));
    }
    assert_eq!(out.ids.len(), reader.report().rows);
    Ok(out)
}

/// `data` with the given columns removed from lines that split into the header's
/// column count (others are left alone, so they stay malformed).
fn drop_columns(data: &[u8], columns: &[usize]) -> Vec<u8> {
    let width = CSV_HEADER.split(',').count();
    let mut out = Vec::with_capacity(data.len());
    for line in data.split_inclusive(|&b| b == b'\n') {
        let (body, end) = match line.strip_suffix(b"\n") {
            Some(b) => (b, &b"\n"[..]),
            None => (line, &b""[..]),
        };
        let fields: Vec<&[u8]> = body.split(|&b| b == b',').collect();
        if fields.len() == width && !body.contains(&b'"') {
            let kept: Vec<&[u8]> =
                fields.iter().enumerate().filter(|(i, _)| !columns.contains(i)).map(|(_, f)| *f).collect();
            out.extend_from_slice(&kept.join(&b","[..]));
        } else {
            out.extend_from_slice(body);
        }
        out.extend_from_slice(end);
    }
    out
}

/// The bundle target: `data` as a model bundle and as a training checkpoint. Either a
/// typed error or a model that predicts; never a panic.
pub fn bundle(data: &[u8]) {
    let dev = Device::Cpu;
    let meta = bundle::read_metadata(data);
    match bundle::load(data, &dev) {
        Ok(b) => {
            assert!(meta.is_ok(), "a bundle loaded whose metadata alone does not");
            check_schema_encodes(&b.schema);
            let inst = Instance { cat: vec![0; b.schema.num_categorical()], num: vec![0.0; b.schema.num_numeric()] };
            let p = b.predict(std::slice::from_ref(&inst));
            assert!(matches!(&p, Ok(v) if v.len() == 1), "a loaded bundle cannot predict: {:?}", p.err());
        }
        Err(e) => check_bundle_error(&e),
    }
    if let Err(e) = Trainer::from_checkpoint(data, &dev) {
        check_bundle_error(&e);
    }
}

/// What a loaded schema promises: every vocabulary value has its own id, the empty value
/// is OOV, and the numeric fields encode their whole training range finitely.
fn check_schema_encodes(schema: &Schema) {
    for f in &schema.categorical {
        for (i, v) in f.vocab().iter().enumerate() {
            assert_eq!(f.encode(v), i as u32 + 1, "field `{}`: `{v}` does not encode to its own id", f.name);
        }
        assert_eq!(f.encode(""), 0, "field `{}`: the missing value is not OOV", f.name);
    }
    for f in &schema.numeric {
        for x in [f.min, f.max, f.min / 2.0 + f.max / 2.0] {
            assert!(
                f.encode(x).is_some(),
                "field `{}`: {x} in its range [{}, {}] does not encode",
                f.name,
                f.min,
                f.max
            );
        }
    }
}

fn check_bundle_error(e: &Error) {
    // Every variant is typed; formatting must not panic either.
    let text = e.to_string();
    assert!(!text.is_empty());
}
