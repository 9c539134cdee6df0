//! Data inputs through the real binary: `convert` writes a Parquet file that trains,
//! streams, evaluates and predicts exactly as its CSV; a directory of Parquet files, or of
//! CSV files (plain or gzipped), is one input.

use std::path::Path;

mod common;
use common::*;

fn train(train: &str, valid: &str, out: &str, extra: &[&str]) {
    ok(&quick_train(train, valid, out, extra));
}

#[test]
fn parquet_trains_evaluates_and_predicts_as_its_csv() {
    let dir = Tmp::new("parquet");
    let (train_csv, valid_csv) = synth(&dir, 3_000, 600);
    let (train_pq, valid_pq) = (dir.path("train.parquet"), dir.path("valid.parquet"));
    ok(&["convert", "--input", &train_csv, "--output", &train_pq]);
    ok(&["convert", "--input", &valid_csv, "--output", &valid_pq]);
    assert!(std::fs::read(&train_pq).unwrap().starts_with(b"PAR1"));

    let (from_csv, from_pq) = (dir.path("csv.safetensors"), dir.path("pq.safetensors"));
    train(&train_csv, &valid_csv, &from_csv, &[]);
    train(&train_pq, &valid_pq, &from_pq, &[]);
    assert_eq!(predictions_of(&from_csv, &valid_csv), predictions_of(&from_pq, &valid_csv));

    // A directory of Parquet files, streamed (reopened every epoch).
    let parts = dir.path("parts");
    std::fs::create_dir_all(&parts).unwrap();
    std::fs::copy(&train_pq, Path::new(&parts).join("part-0.parquet")).unwrap();
    std::fs::write(Path::new(&parts).join("README.txt"), "not data").unwrap();
    let (streamed_csv, streamed_pq) = (dir.path("s-csv.safetensors"), dir.path("s-pq.safetensors"));
    let stream = ["--stream", "--shuffle-buffer", "500"];
    train(&train_csv, &valid_csv, &streamed_csv, &stream);
    train(&parts, &valid_pq, &streamed_pq, &stream);
    assert_eq!(predictions_of(&streamed_csv, &valid_csv), predictions_of(&streamed_pq, &valid_csv));

    // eval and predict read Parquet too, to the same output.
    let eval = |data: &str| stdout(ok(&["eval", "--model", &from_csv, "--data", data, "--json"]));
    assert_eq!(eval(&valid_csv), eval(&valid_pq));
    let (p_csv, p_pq) = (dir.path("p-csv.csv"), dir.path("p-pq.csv"));
    ok(&["predict", "--model", &from_csv, "--data", &valid_csv, "--out", &p_csv, "--keep", "search_id"]);
    ok(&["predict", "--model", &from_csv, "--data", &valid_pq, "--out", &p_pq, "--keep", "search_id"]);
    assert_eq!(std::fs::read(&p_csv).unwrap(), std::fs::read(&p_pq).unwrap());

    // Not Parquet after all: a clear error naming the file.
    let fake = dir.path("fake.parquet");
    std::fs::write(&fake, "search_id,click\n1,0\n").unwrap();
    let err = fails(&["eval", "--model", &from_csv, "--data", &fake]);
    assert!(err.contains("fake.parquet") && err.contains("not a readable Parquet file"), "{err}");
}

#[test]
fn a_directory_of_csv_parts_is_one_input() {
    use std::io::Write;
    let dir = Tmp::new("csv-parts");
    let (train_csv, valid_csv) = synth(&dir, 2_000, 400);
    let text = std::fs::read_to_string(&train_csv).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let parts = dir.path("parts");
    std::fs::create_dir_all(&parts).unwrap();
    let part = |name: &str| Path::new(&parts).join(name);
    // A plain part without a final newline, a gzipped one, a plain one.
    std::fs::write(part("a.csv"), format!("{header}\n{}", rows[..700].join("\n"))).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(format!("{header}\r\n{}\n", rows[700..1500].join("\n")).as_bytes()).unwrap();
    std::fs::write(part("b.csv.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(part("c.csv"), format!("{header}\n{}\n", rows[1500..].join("\n"))).unwrap();

    let (whole, split) = (dir.path("whole.safetensors"), dir.path("split.safetensors"));
    train(&train_csv, &valid_csv, &whole, &[]);
    train(&parts, &valid_csv, &split, &[]);
    assert_eq!(predictions_of(&whole, &valid_csv), predictions_of(&split, &valid_csv));

    // A pattern names the same parts, or some of them: `?.csv` leaves out b.csv.gz.
    let (globbed, some) = (dir.path("globbed.safetensors"), dir.path("some.safetensors"));
    let (every, two) = (format!("{parts}/*.csv*"), format!("{parts}/?.csv"));
    train(&every, &valid_csv, &globbed, &[]);
    assert_eq!(predictions_of(&whole, &valid_csv), predictions_of(&globbed, &valid_csv));
    let out = ok(&quick_train(&two, &valid_csv, &some, &[]));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains(&format!("data: {} training rows", rows.len() - 800)), "{log}");
    let err = fails(&["eval", "--model", &whole, "--data", &format!("{parts}/*.tsv")]);
    assert!(err.contains("*.tsv") && err.contains("matches no file"), "{err}");

    // A bad value is located in its part, at the part's own line: row 1600 of the whole
    // input is the 101st row of c.csv, its line 102.
    let mut bad: Vec<String> = rows[1500..].iter().map(|r| r.to_string()).collect();
    let mut fields: Vec<&str> = bad[100].split(',').collect();
    let numeric = fields.len() - 3;
    fields[numeric] = "oops";
    bad[100] = fields.join(",");
    std::fs::write(part("c.csv"), format!("{header}\n{}\n", bad.join("\n"))).unwrap();
    let err = fails(&["eval", "--model", &whole, "--data", &parts]);
    let column = header.split(',').nth(numeric).unwrap();
    assert!(err.contains(&format!("c.csv:102, column `{column}`: not a number")), "{err}");
    let out = ok(&["eval", "--model", &whole, "--data", &parts, "--bad-rows", "skip"]);
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(warning.contains("skipped 1 bad rows") && warning.contains("c.csv:102"), "{warning}");

    // A part whose header differs is named.
    std::fs::write(part("c.csv"), format!("{header}\n{}\n", rows[1500..].join("\n"))).unwrap();
    std::fs::write(part("d.csv"), "search_id,click\n1,0\n").unwrap();
    let err = fails(&["eval", "--model", &whole, "--data", &parts]);
    assert!(err.contains("d.csv") && err.contains("header differs"), "{err}");
}
