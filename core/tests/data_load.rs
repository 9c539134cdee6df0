//! Loader behaviour on small in-memory CSVs: fitting, encoding, normalisation, gzip, and
//! every kind of bad input.

use std::io::Write;

use adaftr_core::data::{load_train, load_with_schema, BadRows, LoadOptions, SchemaSpec, MAX_LINE_BYTES};
use adaftr_core::error::{Error, Location};
use adaftr_core::schema::{NormKind, Side};

const HEADER: &str = "id,u,i,x,y,click,conversion\n";

fn spec() -> SchemaSpec {
    serde_json::from_str(
        r#"{"categorical": ["u", "i"], "numeric": ["x", "y"], "group": "id",
            "user_side": ["u", "x"], "item_side": ["i"]}"#,
    )
    .unwrap()
}

fn opts() -> LoadOptions {
    LoadOptions { spec: Some(spec()), ..Default::default() }
}

fn csv(rows: &[&str]) -> Vec<u8> {
    let mut s = HEADER.to_string();
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s.into_bytes()
}

const GOOD: [&str; 6] = [
    "s1,a,p,1,0.5,0,0",
    "s1,b,q,2,0.5,1,0",
    "s2,a,p,3,0.5,1,1",
    "s2,c,,4,0.5,0,0",
    "s3,a,q,2,0.5,0,0",
    "s1,b,p,3,0.5,0,0",
];

#[test]
fn fits_vocabularies_and_encodes() {
    let (schema, data, report) = load_train(&csv(&GOOD)[..], "t.csv", &opts()).unwrap();
    assert_eq!(schema.format, "explicit");
    assert_eq!((report.rows, report.skipped), (6, 0));
    // u: a x3, b x2, c x1 -> a=1, b=2, c=3. i: p x3, q x2, "" missing.
    assert_eq!(schema.categorical[0].vocab(), ["a", "b", "c"]);
    assert_eq!(schema.categorical[1].vocab(), ["p", "q"]);
    assert_eq!(schema.categorical[0].side, Side::User);
    assert_eq!(schema.categorical[1].side, Side::Item);
    assert_eq!(schema.numeric[0].side, Side::User);
    assert_eq!(schema.numeric[1].side, Side::Context);
    assert_eq!(data.cat, [1, 1, 2, 2, 1, 1, 3, 0, 1, 2, 2, 1]);
    assert_eq!(data.num.iter().step_by(2).copied().collect::<Vec<_>>(), [1.0, 2.0, 3.0, 4.0, 2.0, 3.0]);
    assert_eq!((data.clicks(), data.conversions()), (2, 1));
    assert_eq!(data.group.as_deref(), Some(&[0, 0, 1, 1, 2, 0][..]));
    assert_eq!(schema.group.as_deref(), Some("id"));

    // Unseen values and empty values map to 0; columns may come in another order.
    let test = "conversion,click,y,x,i,u,id\n0,0,0.5,1,zzz,a,s9\n0,1,0.5,1,q,,s9\n";
    let (data, _) = load_with_schema(test.as_bytes(), "test.csv", &schema, &opts()).unwrap();
    assert_eq!(data.cat, [1, 0, 0, 2]);
    assert_eq!(data.group.as_deref(), Some(&[0, 0][..]));

    // One encoding path: the training file encoded again with the schema fitted on it gives
    // the training loader's very rows.
    let (_, train, _) = load_train(&csv(&GOOD)[..], "t.csv", &opts()).unwrap();
    let (again, report) = load_with_schema(&csv(&GOOD)[..], "t.csv", &schema, &opts()).unwrap();
    assert_eq!(again, train);
    assert_eq!(report.rows, 6);
}

#[test]
fn the_spec_s_descriptions_reach_the_fitted_schema() {
    let mut spec = spec();
    spec.fields = serde_json::from_str(
        r#"{"u": {"label": "User tier", "group": "Profile"}, "y": {"description": "Seconds on the page."}}"#,
    )
    .unwrap();
    let o = LoadOptions { spec: Some(spec), ..Default::default() };
    let (schema, _, _) = load_train(&csv(&GOOD)[..], "t.csv", &o).unwrap();
    assert_eq!(schema.categorical[0].info.label.as_deref(), Some("User tier"));
    assert_eq!(schema.categorical[0].info.group.as_deref(), Some("Profile"));
    assert!(schema.categorical[1].info.is_empty() && schema.numeric[0].info.is_empty());
    assert_eq!(schema.numeric[1].info.description.as_deref(), Some("Seconds on the page."));
}

#[test]
fn group_column_may_also_be_a_feature() {
    let spec = SchemaSpec { categorical: vec!["id".into(), "u".into(), "i".into()], ..spec() };
    let o = LoadOptions { spec: Some(spec), ..Default::default() };
    let (schema, data, _) = load_train(&csv(&GOOD)[..], "t", &o).unwrap();
    assert_eq!(schema.categorical[0].vocab(), ["s1", "s2", "s3"]);
    assert_eq!(data.cat_row(2), [2, 1, 1]);
    assert_eq!(data.group.as_deref(), Some(&[0, 0, 1, 1, 2, 0][..]));
}

#[test]
fn ties_are_ordered_by_value_and_min_count_drops_rare_values() {
    let rows = ["g,b,p,1,1,0,0", "g,a,p,1,1,0,0", "g,c,p,1,1,0,0", "g,b,p,1,1,0,0", "g,a,p,1,1,0,0"];
    let (schema, data, _) = load_train(&csv(&rows)[..], "t", &opts()).unwrap();
    assert_eq!(schema.categorical[0].vocab(), ["a", "b", "c"]);
    let o = LoadOptions { min_count: 2, ..opts() };
    let (schema, data2, _) = load_train(&csv(&rows)[..], "t", &o).unwrap();
    assert_eq!(schema.categorical[0].vocab(), ["a", "b"]);
    assert_eq!(schema.categorical[0].cardinality(), 3);
    assert_eq!(data.cat.iter().step_by(2).copied().collect::<Vec<_>>(), [2, 1, 3, 2, 1]);
    assert_eq!(data2.cat.iter().step_by(2).copied().collect::<Vec<_>>(), [2, 1, 0, 2, 1]);
    // A value below min_count in training is OOV at test time too.
    let (test, _) = load_with_schema(&csv(&["g,c,p,1,1,0,0"])[..], "t", &schema, &o).unwrap();
    assert_eq!(test.cat, [0, 1]);
}

#[test]
fn normalisations_fit_and_apply() {
    // x = 1, 2, 3, 4, 2, 3: min 1, max 4; mean and population sd computed here.
    let xs = [1.0f64, 2.0, 3.0, 4.0, 2.0, 3.0];
    let mean = xs.iter().sum::<f64>() / 6.0;
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 6.0).sqrt();
    let test = csv(&["s,a,p,5,-1,0,0"]);
    let close = |a: f32, b: f64| (a as f64 - b).abs() < 1e-5;
    for norm in [NormKind::None, NormKind::MinMax, NormKind::Standardize, NormKind::Log1p] {
        let o = LoadOptions { norm, ..opts() };
        let (schema, data, _) = load_train(&csv(&GOOD)[..], "t", &o).unwrap();
        let f = &schema.numeric[0];
        assert_eq!((f.norm, f.min, f.max), (norm, 1.0, 4.0));
        let expect = |x: f64| match norm {
            NormKind::None => x,
            NormKind::MinMax => (x - 1.0) / 3.0,
            NormKind::Standardize => (x - mean) / sd,
            NormKind::Log1p => x.max(0.0).ln_1p(),
        };
        for (got, &x) in data.num.iter().step_by(2).zip(&xs) {
            assert!(close(*got, expect(x)), "{norm:?}: {got} vs {}", expect(x));
        }
        // The constant column y = 0.5 keeps scale 1 (no division by zero).
        let y = &schema.numeric[1];
        assert!(y.scale == 1.0 && data.num.iter().all(|v| v.is_finite()), "{norm:?} {y:?}");
        // Applying to new data uses the training statistics.
        let (t, _) = load_with_schema(&test[..], "t", &schema, &o).unwrap();
        assert!(close(t.num[0], expect(5.0)), "{norm:?}: {} vs {}", t.num[0], expect(5.0));
        if norm == NormKind::Log1p {
            assert_eq!(y.encode(-1.0), Some(0.0));
        }
    }
    let (schema, _, _) =
        load_train(&csv(&GOOD)[..], "t", &LoadOptions { norm: NormKind::Standardize, ..opts() }).unwrap();
    assert!(close(schema.numeric[0].shift, mean) && close(schema.numeric[0].scale, sd));
}

#[test]
fn gzip_input_is_transparent() {
    let plain = csv(&GOOD);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let zipped = gz.finish().unwrap();
    assert_eq!(&zipped[..2], &[0x1f, 0x8b]);
    let a = load_train(&plain[..], "t", &opts()).unwrap();
    let b = load_train(&zipped[..], "t.gz", &opts()).unwrap();
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    // A truncated gzip stream is an I/O error, not a panic.
    let err = load_train(&zipped[..zipped.len() - 10], "t.gz", &opts()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn dialect_details() {
    // BOM, CRLF, quoted fields, blank lines, no final newline.
    let text = "\u{feff}id,u,\"i\",x,y,click,conversion\r\ns,\"a,1\",p,1,2,0,0\r\n\r\ns,\"say \"\"x\"\"\",p,1,2,1,1";
    let (schema, data, report) = load_train(text.as_bytes(), "t", &opts()).unwrap();
    assert_eq!(report.rows, 2);
    assert_eq!(schema.categorical[0].vocab(), ["a,1", "say \"x\""]);
    assert_eq!(data.conversions(), 1);
    let o = LoadOptions { max_rows: Some(4), ..opts() };
    let (_, data, report) = load_train(&csv(&GOOD)[..], "t", &o).unwrap();
    assert_eq!((data.len(), report.rows), (4, 4));
}

#[test]
fn unusable_inputs_are_input_errors() {
    let input_err = |r: adaftr_core::Result<()>, needle: &str| match r {
        Err(Error::Input { file, reason }) => {
            assert_eq!(file, "f.csv");
            assert!(reason.contains(needle), "`{reason}` lacks `{needle}`");
        }
        other => panic!("expected an input error containing `{needle}`, got {other:?}"),
    };
    let train = |text: &str, o: &LoadOptions| load_train(text.as_bytes(), "f.csv", o).map(|_| ());
    input_err(train("", &opts()), "empty file");
    input_err(train(HEADER, &opts()), "no data rows");
    input_err(train("id,u,i,x,y,extra,click,conversion\ns,a,p,1,1,9,0,0\n", &opts()), "`extra`");
    input_err(train("id,u,i,x,y,click\ns,a,p,1,1,0\n", &opts()), "missing label column(s) `conversion`");
    input_err(train("a,b\n1,2\n", &LoadOptions::default()), "no `click` column");
    input_err(train("id,u,u,click,conversion\n", &opts()), "duplicate column `u`");
    let skip = LoadOptions { bad_rows: BadRows::Skip, ..opts() };
    input_err(train(&String::from_utf8(csv(&["s,a,p,x,1,0,0"])).unwrap(), &skip), "no valid data rows (1 skipped");
    // A fitted schema needs its columns.
    let (schema, _, _) = load_train(&csv(&GOOD)[..], "t", &opts()).unwrap();
    let r = load_with_schema("id,u,x,y,click,conversion\ns,a,1,1,0,0\n".as_bytes(), "f.csv", &schema, &opts());
    input_err(r.map(|_| ()), "missing column(s) `i`");
}

/// The error of a one-bad-row file, as (line, column, value, reason).
fn bad(rows: &[&str]) -> (u64, Option<String>, Option<String>, String) {
    match load_train(&csv(rows)[..], "bad.csv", &opts()) {
        Err(Error::Data { location: Location { file, line, column }, value, reason }) => {
            assert_eq!(file, "bad.csv");
            (line, column, value, reason)
        }
        other => panic!("expected a data error for {rows:?}, got {other:?}"),
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn each_bad_row_is_located() {
    let ok = GOOD[0];
    let (line, col, val, reason) = bad(&[ok, "s,a,p,1"]);
    assert_eq!((line, col, val), (3, some("y"), None));
    assert!(reason.contains("expected 7 columns, found 4"), "{reason}");
    let (line, col, val, reason) = bad(&[ok, ok, "s,a,p,1,1,0,0,extra,more"]);
    assert_eq!((line, col, val), (4, None, some("extra")));
    assert!(reason.contains("found 9"), "{reason}");
    let (line, col, val, reason) = bad(&["s,a,p,abc,1,0,0"]);
    assert_eq!((line, col, val), (2, some("x"), some("abc")));
    assert!(reason.contains("not a number"), "{reason}");
    for v in ["NaN", "inf", "-inf", "1e40"] {
        let (line, col, val, reason) = bad(&[ok, &format!("s,a,p,1,{v},0,0")]);
        assert_eq!((line, col, val), (3, some("y"), some(v)));
        assert!(reason.contains("NaN or infinite"), "{reason}");
    }
    let (line, col, val, _) = bad(&["s,a,p,,1,0,0"]);
    assert_eq!((line, col, val), (2, some("x"), some("")));
    let (line, col, val, reason) = bad(&["s,a,p,1,1,2,0"]);
    assert_eq!((line, col, val), (2, some("click"), some("2")));
    assert!(reason.contains("0 or 1"), "{reason}");
    let (line, col, val, _) = bad(&["s,a,p,1,1,0,yes"]);
    assert_eq!((line, col, val), (2, some("conversion"), some("yes")));
    let (line, col, val, reason) = bad(&[ok, ok, ok, "s,a,p,1,1,0,1"]);
    assert_eq!((line, col, val), (5, some("conversion"), some("1")));
    assert!(reason.contains("conversion without a click"), "{reason}");
    let (line, col, _, reason) = bad(&["s,\"a,p,1,1,0,0"]);
    assert_eq!((line, col), (2, some("u")));
    assert!(reason.contains("quote"), "{reason}");

    // Not UTF-8.
    let mut bytes = csv(&[ok]);
    bytes.extend_from_slice(b"s,\xff\xfe,p,1,1,0,0\n");
    match load_train(&bytes[..], "bad.csv", &opts()) {
        Err(Error::Data { location, reason, .. }) => {
            assert_eq!(location.line, 3);
            assert!(reason.contains("UTF-8"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Too long.
    let long = format!("s,{},p,1,1,0,0", "a".repeat(MAX_LINE_BYTES));
    let (line, col, _, reason) = bad(&[ok, &long, ok]);
    assert_eq!((line, col), (3, None));
    assert!(reason.contains("line too long"), "{reason}");
}

#[test]
fn skip_policy_counts_and_keeps_first_messages() {
    let skip = LoadOptions { bad_rows: BadRows::Skip, ..opts() };
    let long = format!("s,{},p,1,1,0,0", "a".repeat(MAX_LINE_BYTES + 10));
    let rows = [
        GOOD[0],
        "s,yy,p,x,1,0,0",
        GOOD[1],
        &long,
        "s,a,p,99,1,0,1",
        GOOD[2],
        "s,a",
        "s,a,p,1,1,7,0",
        "s,a,p,1,nan,0,0",
        GOOD[3],
        "s,zz,p,1,1,0,0,0",
    ];
    let (schema, data, report) = load_train(&csv(&rows)[..], "t.csv", &skip).unwrap();
    assert_eq!((report.rows, report.skipped), (4, 7));
    assert_eq!(data.len(), 4);
    assert_eq!(report.first_errors.len(), 5);
    for (msg, line) in report.first_errors.iter().zip([3, 5, 6, 8, 9]) {
        assert!(msg.starts_with(&format!("t.csv:{line}")), "{msg}");
    }
    // Skipped rows count towards neither the vocabulary nor the statistics.
    assert_eq!(schema.categorical[0].vocab(), ["a", "b", "c"]);
    assert_eq!((schema.numeric[0].min, schema.numeric[0].max), (1.0, 4.0));
    // Skipping applies to encoding too.
    let (test, report) = load_with_schema(&csv(&rows)[..], "t.csv", &schema, &skip).unwrap();
    assert_eq!((test.len(), report.skipped), (4, 7));
    assert!(test.num.iter().all(|x| x.is_finite()));
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap stand-in for fuzzing: mangle a valid file in many ways.
    let base = csv(&GOOD);
    let mut rng = adaftr_core::rng::Rng::new(9);
    for _ in 0..300 {
        let mut bytes = base.clone();
        for _ in 0..1 + rng.below(6) {
            if bytes.is_empty() {
                break;
            }
            let i = rng.below(bytes.len() as u64) as usize;
            match rng.below(4) {
                0 => bytes[i] = rng.below(256) as u8,
                1 => {
                    bytes.remove(i);
                }
                2 => bytes.insert(i, [b',', b'"', b'\n', b'\r', 0xff][rng.below(5) as usize]),
                _ => bytes.truncate(i),
            }
        }
        for policy in [BadRows::Error, BadRows::Skip] {
            let o = LoadOptions { bad_rows: policy, ..opts() };
            let _ = load_train(&bytes[..], "fuzz", &o);
            let _ = load_train(&bytes[..], "fuzz", &LoadOptions { bad_rows: policy, ..Default::default() });
        }
    }
}

/// A fitted schema is validated before training starts, not when the model is saved: a
/// column name no CSV header can match again is refused at once. The unnamed column pandas
/// writes for its index is fine as an ignored column.
#[test]
fn fitted_schema_is_validated_up_front() {
    let odd = SchemaSpec { categorical: vec!["u\u{1}".into(), "i".into()], user_side: vec!["x".into()], ..spec() };
    let text = "id,u\u{1},i,x,y,click,conversion\ns1,a,p,1,0.5,0,0\n";
    let o = LoadOptions { spec: Some(odd), ..Default::default() };
    match load_train(text.as_bytes(), "t.csv", &o) {
        Err(adaftr_core::Error::Schema { field, problem }) => {
            assert_eq!(field, "u\u{1}");
            assert!(matches!(problem, adaftr_core::error::SchemaProblem::OddName { role: "categorical" }));
        }
        other => panic!("expected a schema error, got {:?}", other.map(|(s, _, _)| s)),
    }
    let pandas = SchemaSpec { ignored: vec!["".into()], ..spec() };
    let text = ",id,u,i,x,y,click,conversion\n0,s1,a,p,1,0.5,0,0\n";
    let o = LoadOptions { spec: Some(pandas), ..Default::default() };
    let (schema, data, _) = load_train(text.as_bytes(), "t.csv", &o).unwrap();
    assert_eq!((schema.ignored.as_slice(), data.len()), (&["".to_string()][..], 1));
    schema.validate().unwrap();
}
