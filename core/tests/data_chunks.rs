//! Loading parses files of many chunks on every core: the result must be what one pass in
//! file order gives, wherever the chunks are cut and however many threads parse them.

use std::collections::HashMap;
use std::io::{Read, Write};

use adaftr_core::data::{
    fit_schema, load_train, load_with_schema, read_with_schema, BadRows, Dataset, LoadOptions, LoadReport, SchemaSpec,
};
use adaftr_core::error::Error;
use adaftr_core::schema::{NormKind, Schema};

const HEADER: &str = "id,u,i,x,y,click,conversion\n";

/// Rows enough for several 1 MiB chunks (about 7 MB).
const ROWS: usize = 220_000;

fn opts() -> LoadOptions {
    let spec: SchemaSpec =
        serde_json::from_str(r#"{"categorical": ["u", "i"], "numeric": ["x", "y"], "group": "id"}"#).unwrap();
    LoadOptions { spec: Some(spec), norm: NormKind::Standardize, ..Default::default() }
}

/// Row `r` (0-based): skewed ids so that counts and ties both matter, missing values now
/// and then, numbers with a large offset (the variance must not cancel).
fn row(r: usize) -> String {
    let h = (r as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    let u = if h.is_multiple_of(13) { String::new() } else { format!("u{}", (h % 5000) * (h % 7) / 6) };
    let click = h.is_multiple_of(3);
    let conversion = click && h.is_multiple_of(5);
    format!(
        "s{},{u},{},{},{},{},{}",
        r / 9,
        h % 97,
        1.0e6 + (h % 1000) as f64 / 8.0,
        (h % 31) as f32 - 15.5,
        click as u8,
        conversion as u8
    )
}

fn file(rows: impl Iterator<Item = String>) -> Vec<u8> {
    let mut text = HEADER.to_string();
    for r in rows {
        text.push_str(&r);
        text.push('\n');
    }
    text.into_bytes()
}

/// What one plain pass gives: vocabularies, ids, raw numerics, group ids, and each numeric
/// column's mean and standard deviation.
struct Reference {
    vocabs: Vec<Vec<String>>,
    ids: Vec<[u32; 2]>,
    raw: Vec<[f32; 2]>,
    group_ids: Vec<u32>,
    stats: [(f64, f64); 2],
}

/// One pass over the rows, the plain way: what loading must give.
fn reference(text: &str) -> Reference {
    let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let mut vocabs = Vec::new();
    let mut ids = vec![[0u32; 2]; rows.len()];
    for (k, col) in [1, 2].into_iter().enumerate() {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for r in &rows {
            if !r[col].is_empty() {
                *counts.entry(r[col]).or_default() += 1;
            }
        }
        let mut vocab: Vec<(&str, u64)> = counts.into_iter().collect();
        vocab.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let index: HashMap<&str, u32> = vocab.iter().enumerate().map(|(i, (v, _))| (*v, i as u32 + 1)).collect();
        for (r, out) in rows.iter().zip(&mut ids) {
            out[k] = index.get(r[col]).copied().unwrap_or(0);
        }
        vocabs.push(vocab.into_iter().map(|(v, _)| v.to_string()).collect());
    }
    let raw: Vec<[f32; 2]> = rows.iter().map(|r| [r[3].parse().unwrap(), r[4].parse().unwrap()]).collect();
    let mut stats = [(0.0, 0.0); 2];
    for (k, s) in stats.iter_mut().enumerate() {
        let n = raw.len() as f64;
        let mean = raw.iter().map(|x| x[k] as f64).sum::<f64>() / n;
        let var = raw.iter().map(|x| (x[k] as f64 - mean).powi(2)).sum::<f64>() / n;
        *s = (mean, var.sqrt());
    }
    let mut groups = HashMap::new();
    let group_ids = rows
        .iter()
        .map(|r| {
            let next = groups.len() as u32;
            *groups.entry(r[0]).or_insert(next)
        })
        .collect();
    Reference { vocabs, ids, raw, group_ids, stats }
}

/// A reader that returns at most `step` bytes per read, so chunks are cut elsewhere.
struct Trickle<'a>(&'a [u8], usize);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.1.min(buf.len()).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn on_threads<T: Send>(n: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap().install(f)
}

type Loaded = (Schema, Dataset, LoadReport);

#[test]
fn many_chunks_load_as_one_pass() {
    let text = file((0..ROWS).map(row));
    assert!(text.len() > 6 << 20, "the file must span several chunks");
    let (schema, data, report) = load_train(&text[..], "f.csv", &opts()).unwrap();
    assert_eq!((report.rows, report.skipped), (ROWS, 0));

    let Reference { vocabs, ids, raw, group_ids, stats } = reference(std::str::from_utf8(&text).unwrap());
    for (field, vocab) in schema.categorical.iter().zip(&vocabs) {
        assert_eq!(field.vocab(), &vocab[..], "vocabulary of {}", field.name);
    }
    assert_eq!(data.cat, ids.concat());
    assert_eq!(data.group.as_deref(), Some(&group_ids[..]));
    for (field, (mean, sd)) in schema.numeric.iter().zip(stats) {
        assert!(
            (field.shift as f64 - mean).abs() <= 1e-6 * mean.abs().max(1.0),
            "{}: {} vs {mean}",
            field.name,
            field.shift
        );
        assert!((field.scale as f64 - sd).abs() <= 1e-5 * sd, "{}: {} vs {sd}", field.name, field.scale);
    }
    for (i, x) in raw.iter().enumerate() {
        let want: Vec<f32> = x.iter().zip(&schema.numeric).map(|(&v, f)| f.encode(v).unwrap()).collect();
        assert_eq!(data.num_row(i), &want[..], "row {i}");
    }
    let clicks = (0..ROWS).filter(|&r| row(r).split(',').nth(5) == Some("1")).count();
    assert_eq!(data.clicks(), clicks);

    // Cut elsewhere (short reads, gzip) and parsed on one thread or two: the same bits.
    let same = |other: Loaded, how: &str| {
        assert_eq!(other.0, schema, "schema, {how}");
        assert_eq!(other.1, data, "data, {how}");
        assert_eq!(other.2, report, "report, {how}");
    };
    same(load_train(Trickle(&text, 4093), "f.csv", &opts()).unwrap(), "reads of 4093 bytes");
    same(load_train(&gzip(&text)[..], "f.csv", &opts()).unwrap(), "gzip");
    same(on_threads(1, || load_train(&text[..], "f.csv", &opts()).unwrap()), "one thread");
    same(on_threads(3, || load_train(Trickle(&text, 1 << 20), "f.csv", &opts()).unwrap()), "three threads");

    // Fitting alone (for streaming) finds the same schema, keeping no rows.
    let (fitted, fit_report) = fit_schema(Trickle(&text, 10_007), "f.csv", &opts()).unwrap();
    assert_eq!((fitted, fit_report), (schema.clone(), report.clone()));

    // Encoding with the fitted schema: the same rows, loaded or chunk by chunk.
    let (encoded, _) = load_with_schema(Trickle(&text, 65_521), "f.csv", &schema, &opts()).unwrap();
    assert_eq!(encoded, data);
    let mut pieces = Dataset::new(2, 2);
    let mut groups = Vec::new();
    let mut chunks = 0;
    let each_report = read_with_schema(&text[..], "f.csv", &schema, &opts(), |chunk| {
        pieces.cat.extend_from_slice(&chunk.cat);
        pieces.num.extend_from_slice(&chunk.num);
        pieces.click.extend_from(&chunk.click);
        pieces.conversion.extend_from(&chunk.conversion);
        groups.extend_from_slice(chunk.group.as_deref().unwrap());
        chunks += 1;
        Ok(())
    })
    .unwrap();
    pieces.group = Some(groups);
    assert!(chunks > 4, "{chunks} chunks");
    assert_eq!((pieces, each_report), (data.clone(), report.clone()));
}

#[test]
fn bad_rows_in_later_chunks_name_their_lines() {
    // Data row r is on line r + 2.
    let bad_at = [10, 100_000, 190_000];
    let lines = (0..ROWS).map(|r| if bad_at.contains(&r) { format!("s,u,i,{r}x,1,0,0") } else { row(r) });
    let text = file(lines);
    match load_train(Trickle(&text, 7919), "f.csv", &opts()).map(|r| r.2) {
        Err(Error::Data { location, value, .. }) => {
            assert_eq!((location.line, location.column.as_deref(), value.as_deref()), (12, Some("x"), Some("10x")));
        }
        other => panic!("expected a data error, got {other:?}"),
    }
    // The first error wins even when a later chunk's is found first.
    let text_late = file((0..ROWS).map(|r| if r == 150_000 { "s,1".to_string() } else { row(r) }));
    let e = load_train(&text_late[..], "f.csv", &opts()).map(|r| r.2).unwrap_err();
    assert!(e.to_string().starts_with("f.csv:150002"), "{e}");

    let skip = LoadOptions { bad_rows: BadRows::Skip, ..opts() };
    let (schema, data, report) = load_train(&text[..], "f.csv", &skip).unwrap();
    assert_eq!((data.len(), report.rows, report.skipped), (ROWS - 3, ROWS - 3, 3));
    let lines: Vec<&str> = report.first_errors.iter().map(|m| m.split([':', ',']).nth(1).unwrap()).collect();
    assert_eq!(lines, ["12", "100002", "190002"]);
    let (test, test_report) = load_with_schema(&text[..], "f.csv", &schema, &skip).unwrap();
    assert_eq!((test.len(), &test_report), (ROWS - 3, &report));
}

#[test]
fn max_rows_stops_where_one_pass_stops() {
    let cap = 123_457;
    // A bad row before the cap counts; the one right after the last row taken is never
    // read, so neither is counted nor stops the load.
    let lines = (0..ROWS + 2).map(|r| match r {
        50_000 => "s,u,i,nan,1,0,0".to_string(),
        r if r == cap + 1 => "s,u,i,oops,1,0,0".to_string(),
        r => row(r),
    });
    let text = file(lines);
    let capped = LoadOptions { max_rows: Some(cap), bad_rows: BadRows::Skip, ..opts() };
    let (schema, data, report) = load_train(&text[..], "f.csv", &capped).unwrap();
    assert_eq!((data.len(), report.rows, report.skipped), (cap, cap, 1));
    // The same as a file that holds just those rows.
    let head: Vec<String> = (0..=cap).filter(|&r| r != 50_000).map(row).collect();
    let skip = LoadOptions { bad_rows: BadRows::Skip, ..opts() };
    let (schema_head, data_head, _) = load_train(&file(head.into_iter())[..], "f.csv", &skip).unwrap();
    assert_eq!((schema, data), (schema_head, data_head));
    // Under `BadRows::Error` too, the row after the cap is not read.
    let strict = LoadOptions { max_rows: Some(cap - 1), ..opts() };
    let no_nan = file((0..ROWS).map(|r| if r == cap - 1 { "s,u,i,oops,1,0,0".to_string() } else { row(r) }));
    assert_eq!(load_train(&no_nan[..], "f.csv", &strict).unwrap().1.len(), cap - 1);
}

#[test]
fn a_vocabulary_cap_keeps_the_most_frequent_and_bounds_a_fit_pass() {
    // Field u Zipf-like, as ids are: a frequent head and a long tail of rare values.
    let zipf = |r: usize| {
        let h = (r as u64).wrapping_mul(0xd6e8_feb8_6659_fd93) >> 32;
        let mut fields: Vec<String> = row(r).split(',').map(str::to_string).collect();
        fields[1] = format!("u{}", 1_000_000 / (h % 1_000_000 + 1));
        fields.join(",")
    };
    let text = file((0..ROWS).map(zipf));
    let (full, _, _) = load_train(&text[..], "f.csv", &opts()).unwrap();
    let distinct = full.categorical[0].vocab().len();
    assert!(distinct > 500, "field u must be large for this test ({distinct} values)");

    // Loaded: exact counts, the cap keeps the head of the full vocabulary.
    let capped = LoadOptions { max_vocab: Some(100), ..opts() };
    let (schema, data, _) = load_train(&text[..], "f.csv", &capped).unwrap();
    assert_eq!(schema.categorical[0].vocab(), &full.categorical[0].vocab()[..100]);
    assert_eq!(schema.categorical[1].vocab(), full.categorical[1].vocab(), "97 values are under the cap");
    assert!(data.cat.iter().step_by(2).all(|&id| id <= 100));
    let fit = schema.vocabulary.as_ref().unwrap();
    assert_eq!((fit.min_count, fit.max_size, fit.approximate), (1, Some(100), false));

    // A fit pass (streamed training) under a cap above the distinct count: exact, the same.
    let roomy = LoadOptions { max_vocab: Some(distinct), ..opts() };
    let (streamed, _) = fit_schema(&text[..], "f.csv", &roomy).unwrap();
    assert_eq!(streamed, load_train(&text[..], "f.csv", &roomy).unwrap().0);
    assert!(!streamed.vocabulary.as_ref().unwrap().approximate);

    // Under a small cap it prunes as it counts: approximate, flagged, and still the most
    // frequent values (the head is far above what pruning drops).
    let (pruned, _) = fit_schema(&text[..], "f.csv", &capped).unwrap();
    assert!(pruned.vocabulary.as_ref().unwrap().approximate);
    assert_eq!(pruned.categorical[0].vocab().len(), 100);
    let head: std::collections::HashSet<&String> = full.categorical[0].vocab()[..30].iter().collect();
    let kept: std::collections::HashSet<&String> = pruned.categorical[0].vocab().iter().collect();
    assert!(head.is_subset(&kept), "the 30 most frequent values survive pruning");
}
