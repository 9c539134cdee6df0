//! End to end through the real binary: synth, train, eval, predict, inspect; a training run
//! killed with SIGKILL and resumed; corrupt files giving errors, not panics.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::*;

#[test]
fn synth_train_eval_predict_inspect() {
    let dir = Tmp::new("e2e");
    let (train, valid) = synth(&dir, 20_000, 5_000);
    assert!(Path::new(&dir.path("train.truth.csv")).exists(), "synth writes the truth beside the data");
    let model = dir.path("model.safetensors");
    let metrics = dir.path("metrics.jsonl");
    ok(&[
        "train",
        "--train",
        &train,
        "--valid",
        &valid,
        "--out",
        &model,
        "--epochs",
        "3",
        "--batch-size",
        "512",
        "--lr",
        "0.003",
        "--metrics-out",
        &metrics,
    ]);
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&metrics).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!lines.is_empty() && lines.len() <= 3);
    assert!(lines[0]["tau_p50"].as_f64().is_some(), "per-epoch tau distribution is logged");

    let json: serde_json::Value =
        serde_json::from_str(&stdout(ok(&["eval", "--model", &model, "--data", &valid, "--json"]))).unwrap();
    for key in [
        "auc_ctr",
        "auc_cvr",
        "auc_ctcvr",
        "logloss_ctr",
        "logloss_cvr",
        "logloss_ctcvr",
        "rows",
        "clicks",
        "conversions",
        "tau_mean",
        "tau_p5",
        "tau_p50",
        "tau_p95",
    ] {
        assert!(json.get(key).is_some(), "eval --json lacks {key}: {json}");
    }
    assert_eq!(json["rows"], 5_000);
    let (ctr, ctcvr) = (json["auc_ctr"].as_f64().unwrap(), json["auc_ctcvr"].as_f64().unwrap());
    assert!(ctr > 0.6 && ctcvr > 0.6, "a trained model beats chance clearly: ctr {ctr}, ctcvr {ctcvr}");
    let tau = json["tau_p50"].as_f64().unwrap();
    assert!((0.05..=1.0).contains(&tau));
    let with_truth: serde_json::Value = serde_json::from_str(&stdout(ok(&[
        "eval",
        "--model",
        &model,
        "--data",
        &valid,
        "--json",
        "--truth",
        &dir.path("valid.truth.csv"),
    ])))
    .unwrap();
    assert!(with_truth["tau_spearman"].as_f64().is_some_and(|s| (-1.0..=1.0).contains(&s)));

    let pred = dir.path("pred.csv");
    ok(&["predict", "--model", &model, "--data", &valid, "--out", &pred]);
    let text = std::fs::read_to_string(&pred).unwrap();
    let mut rows = text.lines();
    assert_eq!(rows.next(), Some("pctr,pcvr,pctcvr,tau"));
    let from_cli: Vec<Vec<f32>> = rows.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    let in_memory = predictions_of(&model, &valid);
    assert_eq!(from_cli.len(), in_memory.len());
    for (a, b) in from_cli.iter().zip(&in_memory) {
        for k in 0..4 {
            assert!((a[k] - b[k]).abs() <= 1e-7, "{a:?} vs {b:?}");
        }
    }

    let info = stdout(ok(&["inspect", "--model", &model]));
    let backbone = format!("backbone = \"{}\"", adaftr_core::config::Config::default().model.backbone.name());
    assert!(info.contains(&backbone) && info.contains("best epoch"), "{info}");
    assert!(info.contains("16 categorical fields") && info.contains("63 numeric fields"), "{info}");
    // The bundle names its training files, never the directories of the machine that
    // trained it.
    assert!(info.contains("train: train.csv") && info.contains("valid: valid.csv"), "{info}");
    let training = &info[info.find("[training]").unwrap()..];
    assert!(!training.contains(&dir.path("")), "the summary holds a path of the training machine: {training}");
    let (_, _, summary) = adaftr_core::bundle::read_metadata(&std::fs::read(&model).unwrap()).unwrap();
    for (k, v) in &summary.notes {
        assert!(!v.contains('/') && !v.contains(std::path::MAIN_SEPARATOR), "note `{k}` holds a path: {v}");
    }

    predict_without_labels(&dir, &model, &valid, &text);
}

/// New traffic has no labels yet: `predict` scores the feature columns alone, copies the
/// columns asked for, and gives the same predictions as on the labelled file; `eval` still
/// requires the labels.
fn predict_without_labels(dir: &Tmp, model: &str, valid: &str, labelled_predictions: &str) {
    let text = std::fs::read_to_string(valid).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let drop =
        [header.iter().position(|h| *h == "click").unwrap(), header.iter().position(|h| *h == "conversion").unwrap()];
    let search_id = header.iter().position(|h| *h == "search_id").unwrap();
    let keep_fields = |fields: Vec<&str>| -> Vec<String> {
        fields.iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, f)| f.to_string()).collect()
    };
    // An id column to join on, quoted because it holds a comma, in front.
    let mut unlabelled = format!("row_id,{}\n", keep_fields(header.clone()).join(","));
    let mut expected = vec!["row_id,search_id,pctr,pcvr,pctcvr,tau".to_string()];
    for ((n, line), pred) in lines.enumerate().zip(labelled_predictions.lines().skip(1)) {
        let fields: Vec<&str> = line.split(',').collect();
        unlabelled += &format!("\"r,{n}\",{}\n", keep_fields(fields.clone()).join(","));
        expected.push(format!("\"r,{n}\",{},{pred}", fields[search_id]));
    }
    let data = dir.path("unlabelled.csv");
    std::fs::write(&data, &unlabelled).unwrap();

    // The same batch size as the labelled run (two batches of 5000 rows), so the very same
    // floating-point sums: the predictions must match exactly.
    let out = dir.path("unlabelled-pred.csv");
    let run = ok(&["predict", "--model", model, "--data", &data, "--out", &out, "--keep", "row_id,search_id"]);
    assert!(String::from_utf8_lossy(&run.stderr).contains("wrote 5000 predictions"));
    let got = std::fs::read_to_string(&out).unwrap();
    assert_eq!(got.lines().count(), 5001);
    for (g, e) in got.lines().zip(&expected) {
        assert_eq!(g, e, "predictions without labels differ from those with");
    }

    let e = fails(&["eval", "--model", model, "--data", &data]);
    assert!(e.contains("unlabelled.csv") && e.contains("missing label column(s) `click`, `conversion`"), "{e}");
    let e = fails(&["predict", "--model", model, "--data", &data, "--out", &out, "--keep", "user_id"]);
    assert!(e.contains("no column(s) `user_id` to copy into the output"), "{e}");
    let e = fails(&["predict", "--model", model, "--data", &data, "--out", &out, "--keep", "tau"]);
    assert!(e.contains("--keep `tau`"), "{e}");

    // A feature column missing, and a bad value on line 3: named as everywhere else.
    let col = unlabelled.lines().next().unwrap().split(',').position(|h| h == "numerical_7").unwrap();
    let edit_column = |edit: &dyn Fn(usize, &mut Vec<String>)| -> String {
        let mut out = String::new();
        for (i, l) in unlabelled.lines().enumerate() {
            // The quoted row id holds one comma: split after it.
            let (id, rest) = if i == 0 { l.split_once(',').unwrap() } else { l.split_at(l.find("\",").unwrap() + 1) };
            let rest = rest.strip_prefix(',').unwrap_or(rest);
            let mut fields: Vec<String> = rest.split(',').map(str::to_string).collect();
            edit(i, &mut fields);
            out += &format!("{id},{}\n", fields.join(","));
        }
        out
    };
    std::fs::write(
        &data,
        edit_column(&|_, f| {
            f.remove(col - 1);
        }),
    )
    .unwrap();
    let e = fails(&["predict", "--model", model, "--data", &data, "--out", &out]);
    assert!(e.contains("missing column(s) `numerical_7`"), "{e}");
    std::fs::write(
        &data,
        edit_column(&|i, f| {
            if i == 2 {
                f[col - 1] = "inf".into()
            }
        }),
    )
    .unwrap();
    let e = fails(&["predict", "--model", model, "--data", &data, "--out", &out]);
    assert!(e.contains("unlabelled.csv:3, column `numerical_7`") && e.contains("(value `inf`)"), "{e}");
    let run = ok(&["predict", "--model", model, "--data", &data, "--out", &out, "--bad-rows", "skip"]);
    assert!(String::from_utf8_lossy(&run.stderr).contains("skipped 1 bad rows"));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 5000);
}

fn train_args<'a>(train: &'a str, valid: &'a str, out: &'a str, ckdir: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--train",
        train,
        "--valid",
        valid,
        "--out",
        out,
        "--epochs",
        "3",
        "--batch-size",
        "256",
        "--seed",
        "7",
        "--checkpoint-dir",
        ckdir,
        "--checkpoint-every",
        "5",
    ]
}

#[test]
fn killed_run_resumes_to_the_uninterrupted_result() {
    let dir = Tmp::new("resume");
    let (train, valid) = synth(&dir, 12_000, 2_000);
    let (full, resumed) = (dir.path("full.safetensors"), dir.path("resumed.safetensors"));
    let (ck1, ck2) = (dir.path("ck1"), dir.path("ck2"));
    ok(&train_args(&train, &valid, &full, &ck1));

    // Kill the second run with SIGKILL once a mid-run checkpoint exists.
    let mut child = bin().args(train_args(&train, &valid, &resumed, &ck2)).stderr(Stdio::null()).spawn().unwrap();
    let ckpt = Path::new(&ck2).join("checkpoint.safetensors");
    let start = Instant::now();
    while !ckpt.exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        assert!(child.try_wait().unwrap().is_none(), "run finished before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(!Path::new(&resumed).exists(), "the killed run must not have finished");

    let mut args = train_args(&train, &valid, &resumed, &ck2);
    args.push("--resume");
    let out = run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming from"));
    assert_eq!(predictions_of(&full, &valid), predictions_of(&resumed, &valid), "resumed run differs");
}

#[test]
fn corrupt_files_and_missing_cuda_are_clear_errors() {
    let dir = Tmp::new("corrupt");
    let (train, valid) = synth(&dir, 2_000, 500);
    let junk = dir.path("junk.safetensors");
    std::fs::write(&junk, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let e = fails(&["eval", "--model", &junk, "--data", &valid]);
    assert!(e.contains("not a valid model bundle"), "{e}");
    let e = fails(&["inspect", "--model", &dir.path("absent.safetensors")]);
    assert!(e.contains("absent.safetensors"), "{e}");

    let ck = dir.path("ck");
    std::fs::create_dir_all(&ck).unwrap();
    std::fs::write(Path::new(&ck).join("checkpoint.safetensors"), b"garbage").unwrap();
    let out = dir.path("m.safetensors");
    let mut args = train_args(&train, &valid, &out, &ck);
    args.push("--resume");
    let e = fails(&args);
    assert!(e.contains("cannot resume") && e.contains("checkpoint.safetensors"), "{e}");

    if !cfg!(feature = "cuda") {
        let e = fails(&["train", "--train", &train, "--valid", &valid, "--out", &out, "--device", "cuda"]);
        assert!(e.contains("built without CUDA"), "{e}");
    }
}

/// The study in miniature (the CI-sized version of RESULTS.md's grid): every contrastive
/// mode plus the plain backbone, two seeds, one epoch, scored against the truth, with the
/// summary table, the JSON lines and the three plots; then re-plotted by `adaftr plot`.
#[test]
fn study_smoke_runs_every_mode_and_plots() {
    let dir = Tmp::new("study");
    let (train, valid) = synth(&dir, 6_000, 2_000);
    let test = dir.path("test.csv");
    ok(&["synth", "--rows", "2000", "--seed", "3", "--out", &test]);
    let grid = dir.path("grid.toml");
    let mut toml = String::new();
    for (name, extra) in [
        ("plain", "config.loss.cl = \"none\""),
        ("fixed", "config.loss.cl = \"fixed\""),
        ("joint", "config.loss.cl = \"joint\""),
        ("meta", "config.loss.cl = \"meta\""),
        ("transfer", "config.loss.cl = \"transfer\"\nconfig.model.projection = [8, 8]"),
        ("mmoe-meta", "config.loss.cl = \"meta\"\nconfig.model.backbone = \"mmoe\""),
    ] {
        toml += &format!("[[variant]]\nname = \"{name}\"\n{extra}\n\n");
    }
    std::fs::write(&grid, toml).unwrap();
    let base = dir.path("base.toml");
    std::fs::write(
        &base,
        "[train]\nepochs = 1\nbatch_size = 512\n[model]\nbottom = [32]\ntower = [16]\nembedding_dim = 4\n",
    )
    .unwrap();
    let (runs, md, plots) = (dir.path("runs.jsonl"), dir.path("summary.md"), dir.path("plots"));
    ok(&[
        "study",
        "--train",
        &train,
        "--valid",
        &valid,
        "--test",
        &test,
        "--truth",
        &dir.path("test.truth.csv"),
        "--grid",
        &grid,
        "--config",
        &base,
        "--seeds",
        "2",
        "--out",
        &runs,
        "--markdown",
        &md,
        "--plots",
        &plots,
    ]);
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&runs).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 12, "6 variants x 2 seeds");
    for l in &lines {
        // One tiny epoch learns little; the full-size runs are RESULTS.md's business.
        for k in ["auc_ctr", "auc_cvr", "auc_ctcvr"] {
            assert!(l[k].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)), "{k}: {l}");
        }
        assert!(l["bayes_auc"]["cvr"].as_f64().is_some());
        let learns_tau = !matches!(l["variant"].as_str(), Some("plain" | "fixed"));
        if learns_tau {
            assert!(l["tau_spearman"].as_f64().is_some_and(|s| (-1.0..=1.0).contains(&s)), "{l}");
            assert_eq!(l["tau_by_rho"].as_array().map(Vec::len), Some(10));
            let counts: u64 = l["tau_hist"]["counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum();
            assert_eq!(counts, 2_000, "every test instance is in the tau histogram");
        }
    }
    let summary = std::fs::read_to_string(&md).unwrap();
    assert!(summary.starts_with("Bayes-optimal test AUC") && summary.contains("| mmoe-meta | 2 |"), "{summary}");
    let again = dir.path("again");
    ok(&["plot", "--runs", &runs, "--out", &again]);
    for folder in [&plots, &again] {
        for f in ["auc.png", "tau-distribution.png", "tau-vs-relatedness.png"] {
            let bytes = std::fs::read(Path::new(folder).join(f)).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{folder}/{f}");
        }
    }
    assert!(fails(&["plot", "--runs", &md, "--out", &again]).contains("not a JSON line"));
}

/// `synth` writes what each column means; `describe` puts it into a trained bundle and
/// changes nothing else: the same config, summary and predictions, to the bit.
#[test]
fn describe_names_the_fields_and_keeps_the_predictions() {
    let dir = Tmp::new("describe");
    let (train, valid) = synth(&dir, 4_000, 1_000);
    let fields = dir.path("train.fields.json");
    assert!(Path::new(&fields).exists(), "synth writes the fields' meanings beside the data");
    let model = dir.path("model.safetensors");
    ok(&quick_train(&train, &valid, &model, &[]));
    let described = dir.path("described.safetensors");
    let run = ok(&["describe", "--model", &model, "--fields", &fields, "--out", &described]);
    assert!(String::from_utf8_lossy(&run.stderr).contains("described 79 of 79 fields"));

    let meta = |p: &str| adaftr_core::bundle::read_metadata(&std::fs::read(p).unwrap()).unwrap();
    let ((config, schema, summary), (config2, schema2, summary2)) = (meta(&model), meta(&described));
    assert_eq!((config, summary), (config2, summary2));
    // Trained on the AliExpress layout, the bundle knew only what the public release says.
    assert_eq!(schema.categorical[2].info.label, None);
    assert!(schema.categorical[2].info.description.as_deref().unwrap().contains("anonymises"));
    assert_eq!(schema2.categorical[2].info.label.as_deref(), Some("User segment"));
    assert_eq!(schema2.numeric[57].info.label.as_deref(), Some("Item flag 58"));
    let info = stdout(ok(&["inspect", "--model", &described]));
    assert!(info.contains("(User segment)") && info.contains("(Item flag 58)"), "{info}");
    let vocab = |s: &adaftr_core::schema::Schema| s.categorical.iter().map(|f| f.vocab().to_vec()).collect::<Vec<_>>();
    assert_eq!(vocab(&schema), vocab(&schema2));
    assert_eq!(predictions_of(&model, &valid), predictions_of(&described, &valid));
    let (p1, p2) = (dir.path("p1.csv"), dir.path("p2.csv"));
    ok(&["predict", "--model", &model, "--data", &valid, "--out", &p1]);
    ok(&["predict", "--model", &described, "--data", &valid, "--out", &p2]);
    assert_eq!(std::fs::read(&p1).unwrap(), std::fs::read(&p2).unwrap(), "predictions are bit-identical");

    // Names the model does not have, a tampered label, and a file that is no JSON object:
    // each refused, naming what is wrong, and nothing written.
    let bad = dir.path("bad.json");
    let out = dir.path("never.safetensors");
    std::fs::write(&bad, r#"{"categorical_1": {"label": "Fine"}, "nope": {}, "numerical_99": {"label": "x"}}"#)
        .unwrap();
    let e = fails(&["describe", "--model", &model, "--fields", &bad, "--out", &out]);
    assert!(e.contains("bad.json") && e.contains("`nope`, `numerical_99`") && !e.contains("categorical_1"), "{e}");
    std::fs::write(&bad, "{\"numerical_3\": {\"label\": \"two\\nlines\"}}").unwrap();
    let e = fails(&["describe", "--model", &model, "--fields", &bad, "--out", &out]);
    assert!(e.contains("`numerical_3`") && e.contains("label"), "{e}");
    std::fs::write(&bad, r#"["categorical_1"]"#).unwrap();
    let e = fails(&["describe", "--model", &model, "--fields", &bad, "--out", &out]);
    assert!(e.contains("bad.json is not a JSON object of field descriptions"), "{e}");
    assert!(!Path::new(&out).exists());
}
