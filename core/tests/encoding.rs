//! One encoding path: the same raw row becomes the same model inputs, and the same
//! predictions, through the training loader, the labelled loader (eval), the scoring reader
//! (`adaftr predict`, labels present or not, extra columns or not), the streamed labelled
//! reader (`adaftr eval`) and `Bundle::predict` on an instance of raw values (the browser).

mod common;

use adaftr_core::bundle;
use adaftr_core::data::{load_train, load_with_schema, BadRows, LoadOptions, SchemaSpec, ScoreBatch, ScoreReader};
use adaftr_core::evaluate::{predict, score_reader};
use adaftr_core::inference::{Inputs, Instance};
use adaftr_core::schema::{NormKind, Schema};
use adaftr_core::train::Trainer;
use adaftr_core::Error;
use candle_core::Device;
use common::small_config;

const HEADER: &str = "id,u,i,x,y,click,conversion";

/// Rows with repeated, rare, quoted and missing categorical values and spread numerics.
const ROWS: [&str; 10] = [
    "r1,a,p,1,10,0,0",
    "r2,b,q,2,-3,1,0",
    "r3,a,p,3,0.25,1,1",
    "r4,c,,4,7,0,0",
    "r5,a,q,2.5e1,-0.5,0,0",
    "r6,\"b\",p,3,0.5,1,0",
    "r7,a,\"x,y\",0.001,100,0,0",
    "r8,d,p,-2,1e3,1,1",
    "r9,b,q,8,2,0,0",
    "\"r,10\",a,p,5,-7.5,1,0",
];

fn spec() -> SchemaSpec {
    SchemaSpec {
        categorical: vec!["u".into(), "i".into()],
        numeric: vec!["x".into(), "y".into()],
        ignored: vec!["id".into()],
        ..SchemaSpec::default()
    }
}

fn csv(header: &str, rows: &[String]) -> Vec<u8> {
    std::iter::once(header.to_string()).chain(rows.iter().cloned()).collect::<Vec<_>>().join("\n").into_bytes()
}

fn rows() -> Vec<String> {
    ROWS.iter().map(|r| r.to_string()).collect()
}

/// The rows without their label columns, with the columns reordered and an extra one.
fn unlabelled() -> Vec<u8> {
    let rows: Vec<String> = ROWS
        .iter()
        .map(|r| {
            let f = split(r); // id, u, i, x, y, click, conversion, quotes kept
            format!("{},{},extra,{},{},{}", f[4], f[3], f[1], f[2], f[0])
        })
        .collect();
    csv("y,x,note,u,i,id", &rows)
}

/// A row's fields as written (quotes kept), split on the commas outside quotes.
fn split(row: &str) -> Vec<String> {
    let (mut fields, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in row.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// Every row through the scoring reader, in batches of `batch`.
fn scored(data: &[u8], schema: &Schema, keep: &[String], batch: usize) -> (Vec<u32>, Vec<f32>, Vec<Vec<String>>) {
    let mut reader = ScoreReader::new(data, "s.csv", schema, keep, &LoadOptions::default()).unwrap();
    let (mut b, mut out) = (ScoreBatch::default(), (Vec::new(), Vec::new(), Vec::new()));
    while reader.next_batch(&mut b, batch).unwrap() {
        assert!(b.len() <= batch);
        out.0.extend_from_slice(b.inputs.cat());
        out.1.extend_from_slice(b.inputs.num());
        out.2.extend((0..b.len()).map(|i| b.kept(i).to_vec()));
    }
    out
}

#[test]
fn every_path_encodes_a_row_identically() {
    let opts = LoadOptions { spec: Some(spec()), norm: NormKind::Standardize, ..LoadOptions::default() };
    let labelled = csv(HEADER, &rows());
    let (schema, train, _) = load_train(&labelled[..], "t.csv", &opts).unwrap();
    assert_eq!(schema.categorical[1].vocab(), ["p", "q", "x,y"], "quoted values are unquoted once");

    // Eval's loader on the same file.
    let (eval, _) = load_with_schema(&labelled[..], "t.csv", &schema, &opts).unwrap();
    assert_eq!((&eval.cat, &eval.num), (&train.cat, &train.num));

    // The scoring reader: labelled, and unlabelled with reordered and extra columns.
    let keep = vec!["id".to_string()];
    let (cat, num, kept) = scored(&labelled, &schema, &keep, 3);
    assert_eq!((&cat, &num), (&train.cat, &train.num));
    let (cat2, num2, kept2) = scored(&unlabelled(), &schema, &keep, 4);
    assert_eq!((&cat2, &num2), (&train.cat, &train.num), "without labels the inputs differ");
    assert_eq!(kept, kept2);
    assert_eq!(kept[9], ["r,10"], "a passed-through value is unquoted");

    // Instances of raw values (the browser's editor and examples).
    let instances: Vec<Instance> = ROWS
        .iter()
        .map(|r| {
            let f: Vec<String> = split(r).into_iter().map(|v| v.trim_matches('"').to_string()).collect();
            Instance::from_raw(&schema, &[&f[1], &f[2]], &[f[3].parse().unwrap(), f[4].parse().unwrap()])
        })
        .collect();
    let inputs = Inputs::from_instances(&schema, &instances).unwrap();
    assert_eq!((inputs.cat(), inputs.num()), (&train.cat[..], &train.num[..]));

    // And the same predictions: Bundle::predict, predict_inputs on scored rows, and eval's
    // batch prediction.
    let t =
        Trainer::new(small_config(adaftr_core::config::Backbone::SharedBottom), schema.clone(), &Device::Cpu).unwrap();
    let b = bundle::load(&t.bundle_bytes(&t.summary()).unwrap(), &Device::Cpu).unwrap();
    let from_instances = b.predict(&instances).unwrap();
    let text = unlabelled();
    let mut reader = ScoreReader::new(&text[..], "s.csv", &b.schema, &[], &LoadOptions::default()).unwrap();
    let mut batch = ScoreBatch::default();
    assert!(reader.next_batch(&mut batch, 100).unwrap());
    let from_rows = b.predict_inputs(&batch.inputs).unwrap();
    let p = predict(&b.model, &eval, 100, &Device::Cpu).unwrap();
    assert_eq!(from_instances, from_rows);
    for (i, q) in from_rows.iter().enumerate() {
        assert_eq!([q.pctr, q.pcvr, q.pctcvr, q.tau.unwrap()], [p.pctr[i], p.pcvr[i], p.pctcvr[i], p.tau[i]]);
    }
    // Eval streamed (`adaftr eval`, streamed validation): the same predictions and labels.
    let s = score_reader(&b.model, &labelled[..], "t.csv", &b.schema, &opts, 100, &Device::Cpu).unwrap();
    assert_eq!(s.predictions, p);
    assert_eq!((&s.labels.click, &s.labels.conversion, &s.labels.group), (&eval.click, &eval.conversion, &eval.group));
}

#[test]
fn scoring_needs_features_only_and_keeps_row_errors() {
    let opts = LoadOptions { spec: Some(spec()), ..LoadOptions::default() };
    let (schema, _, _) = load_train(&csv(HEADER, &rows())[..], "t.csv", &opts).unwrap();
    fn open<'a>(schema: &'a Schema, text: &'a str, keep: &[&str]) -> adaftr_core::Result<ScoreReader<'a, &'a [u8]>> {
        let keep: Vec<String> = keep.iter().map(|k| k.to_string()).collect();
        ScoreReader::new(text.as_bytes(), "s.csv", schema, &keep, &LoadOptions::default())
    }
    // The labelled loader needs the labels; scoring does not.
    let no_labels = "u,i,x,y\na,p,1,2\n";
    let e = load_with_schema(no_labels.as_bytes(), "s.csv", &schema, &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("missing label column(s) `click`, `conversion`"), "{e}");
    let mut r = open(&schema, no_labels, &[]).unwrap();
    let mut b = ScoreBatch::default();
    assert!(r.next_batch(&mut b, 10).unwrap());
    assert_eq!((b.len(), b.inputs.cat()), (1, &[1, 1][..]));
    assert!(!r.next_batch(&mut b, 10).unwrap() && b.is_empty());

    // A missing feature column, or a column to keep that is not there, is named.
    let e = open(&schema, "u,x,y\na,1,2\n", &[]).err().unwrap().to_string();
    assert!(e.contains("s.csv") && e.contains("missing column(s) `i`"), "{e}");
    let e = open(&schema, no_labels, &["id", "u"]).err().unwrap().to_string();
    assert!(e.contains("no column(s) `id` to copy"), "{e}");

    // Bad values: file, line, column and value, as everywhere else; labels are not read,
    // so a label that is not 0/1 does not stop scoring.
    let mut r = open(&schema, "u,i,x,y,click\na,p,1,2,7\nb,q,1,nan,0\n", &[]).unwrap();
    let e = r.next_batch(&mut b, 10).unwrap_err();
    match &e {
        Error::Data { location, value, .. } => {
            assert_eq!((location.file.as_str(), location.line, location.column.as_deref()), ("s.csv", 3, Some("y")));
            assert_eq!(value.as_deref(), Some("nan"));
        }
        other => panic!("{other:?}"),
    }
    let skip = LoadOptions { bad_rows: BadRows::Skip, ..LoadOptions::default() };
    let mut r = ScoreReader::new(&b"u,i,x,y\na,p,1,2\nb,q\nc,p,3,4\n"[..], "s.csv", &schema, &[], &skip).unwrap();
    assert!(r.next_batch(&mut b, 10).unwrap());
    assert_eq!((b.len(), r.report().skipped), (2, 1));
}
