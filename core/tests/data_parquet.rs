//! Parquet input (the `parquet` feature): a CSV converted to Parquet loads to the same schema
//! and dataset (the real samples when present, and a generated file); nulls, several files,
//! and every kind of unusable file give a clear error naming the file and the column.
#![cfg(feature = "parquet")]

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use adaftr_core::data::parquet::{csv_to_parquet, ParquetText};
use adaftr_core::data::{generate, load_train, load_with_schema, LoadOptions, SchemaSpec, SynthConfig};
use adaftr_core::error::Error;
use bytes::Bytes;
use parquet::basic::{ConvertedType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, FloatType, Int32Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

fn to_parquet(csv: &[u8], opts: &LoadOptions) -> Bytes {
    let mut out = Vec::new();
    csv_to_parquet(csv, "in.csv", opts, &mut out).unwrap();
    Bytes::from(out)
}

fn text(parts: Vec<(&str, Bytes)>) -> adaftr_core::Result<ParquetText<Bytes>> {
    ParquetText::new(parts.into_iter().map(|(l, b)| (l.to_string(), b)).collect())
}

/// The CSV and its Parquet twin load to the same thing, fitted and with a schema.
fn same_as_csv(csv: &[u8], opts: &LoadOptions) {
    let pq = to_parquet(csv, opts);
    let (schema, data, report) = load_train(csv, "f", opts).unwrap();
    let (pschema, pdata, preport) = load_train(text(vec![("f.parquet", pq.clone())]).unwrap(), "f", opts).unwrap();
    assert_eq!((&pschema, &pdata, &preport), (&schema, &data, &report));
    let (enc, _) = load_with_schema(text(vec![("f.parquet", pq)]).unwrap(), "f", &schema, opts).unwrap();
    assert_eq!(enc, data);
}

#[test]
fn a_converted_generated_file_loads_to_the_same_dataset() {
    let mut csv = Vec::new();
    let cfg = SynthConfig { rows: 3_000, compute_auc: false, ..SynthConfig::default() };
    generate(&cfg, &mut csv, std::io::sink()).unwrap();
    same_as_csv(&csv, &LoadOptions::default());
    // Split in two files with the same columns: read one after the other.
    let whole = to_parquet(&csv, &LoadOptions::default());
    let text_csv = String::from_utf8(csv.clone()).unwrap();
    let mut lines = text_csv.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let half = |r: &[&str]| format!("{header}\n{}\n", r.join("\n")).into_bytes();
    let (a, b) = rows.split_at(1_234);
    let parts = vec![
        ("a.parquet", to_parquet(&half(a), &LoadOptions::default())),
        ("b.parquet", to_parquet(&half(b), &LoadOptions::default())),
    ];
    let two = load_train(text(parts).unwrap(), "dir", &LoadOptions::default()).unwrap();
    let one = load_train(text(vec![("all.parquet", whole)]).unwrap(), "dir", &LoadOptions::default()).unwrap();
    assert_eq!(two, one);
}

#[test]
fn the_real_samples_load_the_same_from_parquet() {
    let dir = std::env::var_os("ADAFTR_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let mut seen = 0;
    for rel in ["aliexpress-sample/train.csv", "aliccp-sample/ali_ccp_train_sample.csv"] {
        match std::fs::read(dir.join(rel)) {
            Ok(csv) => {
                same_as_csv(&csv, &LoadOptions::default());
                seen += 1;
            }
            Err(e) => eprintln!("skipping: {rel} not found ({e})"),
        }
    }
    eprintln!("{seen} real samples compared");
}

/// A Parquet file of the tiny explicit layout with chosen column types.
fn write(
    columns: Vec<(&str, Physical, Repetition)>,
    fill: impl Fn(&str, usize) -> Option<String>,
    rows: usize,
) -> Bytes {
    let fields = columns
        .iter()
        .map(|(name, p, rep)| {
            let b = Type::primitive_type_builder(name, *p).with_repetition(*rep);
            let b = if *p == Physical::BYTE_ARRAY { b.with_converted_type(ConvertedType::UTF8) } else { b };
            Arc::new(b.build().unwrap())
        })
        .collect();
    let schema = Type::group_type_builder("t").with_fields(fields).build().unwrap();
    let mut out = Vec::new();
    let mut w = SerializedFileWriter::new(&mut out, Arc::new(schema), Arc::new(WriterProperties::default())).unwrap();
    let mut g = w.next_row_group().unwrap();
    for (name, p, rep) in &columns {
        let mut col = g.next_column().unwrap().unwrap();
        let cells: Vec<Option<String>> = (0..rows).map(|r| fill(name, r)).collect();
        let defs: Vec<i16> = cells.iter().map(|c| c.is_some() as i16).collect();
        let defs = (*rep == Repetition::OPTIONAL).then_some(&defs[..]);
        let present = cells.iter().flatten();
        match p {
            Physical::BYTE_ARRAY => {
                let v: Vec<ByteArray> = present.map(|s| ByteArray::from(s.as_str())).collect();
                col.typed::<ByteArrayType>().write_batch(&v, defs, None).unwrap();
            }
            Physical::FLOAT => {
                let v: Vec<f32> = present.map(|s| s.parse().unwrap()).collect();
                col.typed::<FloatType>().write_batch(&v, defs, None).unwrap();
            }
            _ => {
                let v: Vec<i32> = present.map(|s| s.parse().unwrap()).collect();
                col.typed::<Int32Type>().write_batch(&v, defs, None).unwrap();
            }
        }
        col.close().unwrap();
    }
    g.close().unwrap();
    w.close().unwrap();
    Bytes::from(out)
}

fn spec() -> LoadOptions {
    let spec: SchemaSpec = serde_json::from_str(r#"{"categorical": ["u"], "numeric": ["x"]}"#).unwrap();
    LoadOptions { spec: Some(spec), ..LoadOptions::default() }
}

fn good(name: &str, r: usize) -> Option<String> {
    Some(match name {
        "u" => format!("v{}", r % 3),
        "x" => format!("{}", r as f32 / 4.0),
        "click" => (r % 2).to_string(),
        _ => "0".into(),
    })
}

#[test]
fn nulls_are_empty_fields() {
    use Physical::*;
    let cols = vec![
        ("u", BYTE_ARRAY, Repetition::OPTIONAL),
        ("x", FLOAT, Repetition::REQUIRED),
        ("click", INT32, Repetition::REQUIRED),
        ("conversion", INT32, Repetition::REQUIRED),
    ];
    let pq = write(cols, |n, r| if n == "u" && r % 4 == 1 { None } else { good(n, r) }, 10);
    let (schema, data, _) = load_train(text(vec![("n.parquet", pq)]).unwrap(), "n.parquet", &spec()).unwrap();
    assert_eq!(schema.categorical[0].vocab().len(), 3);
    // Rows 1, 5 and 9 had no `u`: the missing id 0.
    let ids: Vec<u32> = data.cat.clone();
    assert_eq!(ids.iter().enumerate().filter(|(_, &id)| id == 0).map(|(r, _)| r).collect::<Vec<_>>(), [1, 5, 9]);
}

#[test]
fn unusable_files_are_clear_errors() {
    use Physical::*;
    let req = Repetition::REQUIRED;
    let cols = || vec![("u", BYTE_ARRAY, req), ("x", FLOAT, req), ("click", INT32, req), ("conversion", INT32, req)];
    let pq = write(cols(), good, 20);

    // Truncated anywhere: refused on opening, naming the file.
    for cut in [0, 3, pq.len() / 2, pq.len() - 1] {
        let e = text(vec![("cut.parquet", pq.slice(..cut))]).map(|_| ()).unwrap_err();
        assert!(
            matches!(&e, Error::Input { file, reason } if file == "cut.parquet" && reason.contains("not a readable Parquet file")),
            "{e}"
        );
    }
    // A label stored as text with a value that is no label: the file, row and column.
    let mut c = cols();
    c[2].1 = BYTE_ARRAY;
    let pq = write(c, |n, r| if n == "click" && r == 6 { Some("yes".into()) } else { good(n, r) }, 20);
    let e = load_train(text(vec![("t.parquet", pq)]).unwrap(), "t.parquet", &spec()).map(|_| ()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("t.parquet:8") && msg.contains("`click`") && msg.contains("yes"), "{msg}");
    // A numeric column holding text.
    let mut c = cols();
    c[1].1 = BYTE_ARRAY;
    let pq = write(c, |n, r| if n == "x" { Some("abc".into()) } else { good(n, r) }, 5);
    let e = load_train(text(vec![("x.parquet", pq)]).unwrap(), "x.parquet", &spec()).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("`x`") && e.to_string().contains("not a number"), "{e}");
    // No conversion label: the missing column is named.
    let pq = write(cols()[..3].to_vec(), good, 5);
    let e = load_train(text(vec![("m.parquet", pq)]).unwrap(), "m.parquet", &spec()).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("conversion"), "{e}");
    // A type it cannot read as a value.
    let e = text(vec![("i.parquet", write_raw_int96())]).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("not supported"), "{e}");
    // Files whose columns differ.
    let a = write(cols(), good, 3);
    let b = write(cols()[..3].to_vec(), good, 3);
    let e = text(vec![("a.parquet", a), ("b.parquet", b)]).map(|_| ()).unwrap_err();
    assert!(matches!(&e, Error::Input { file, .. } if file == "b.parquet"), "{e}");
}

/// A one-column file of the legacy INT96 timestamp type.
fn write_raw_int96() -> Bytes {
    let field = Arc::new(
        Type::primitive_type_builder("t", Physical::INT96).with_repetition(Repetition::REQUIRED).build().unwrap(),
    );
    let schema = Type::group_type_builder("t").with_fields(vec![field]).build().unwrap();
    let mut out = Vec::new();
    let w = SerializedFileWriter::new(&mut out, Arc::new(schema), Arc::new(WriterProperties::default())).unwrap();
    w.close().unwrap();
    Bytes::from(out)
}

#[test]
fn a_file_on_disk_reads_like_bytes() {
    let mut csv = Vec::new();
    generate(&SynthConfig { rows: 500, compute_auc: false, ..SynthConfig::default() }, &mut csv, std::io::sink())
        .unwrap();
    let path = std::env::temp_dir().join(format!("adaftr-pq-{}.parquet", std::process::id()));
    std::fs::write(&path, to_parquet(&csv, &LoadOptions::default())).unwrap();
    let from_file = load_train(
        ParquetText::new(vec![("f".into(), File::open(&path).unwrap())]).unwrap(),
        "f",
        &LoadOptions::default(),
    );
    std::fs::remove_file(&path).unwrap();
    assert_eq!(from_file.unwrap(), load_train(&csv[..], "f", &LoadOptions::default()).unwrap());
}
