//! Parquet through the real binary: `convert` writes a file that trains, streams, evaluates
//! and predicts exactly as its CSV; a directory of Parquet files is one input.

use std::path::Path;

mod common;
use common::*;

fn train(train: &str, valid: &str, out: &str, extra: &[&str]) {
    let mut a = vec![
        "train",
        "--train",
        train,
        "--valid",
        valid,
        "--out",
        out,
        "--model",
        "shared-bottom",
        "--cl",
        "transfer",
        "--epochs",
        "2",
        "--batch-size",
        "256",
        "--seed",
        "3",
    ];
    a.extend_from_slice(extra);
    ok(&a);
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
