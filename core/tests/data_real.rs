//! The loaders on small real AliExpress and Ali-CCP samples, which are not part of the
//! repository: the folder named by `ADAFTR_SHARED_DATA` (by default a `shared/data` folder
//! beside the checkout). Skipped, loudly, when absent.

use std::fs::File;
use std::path::PathBuf;

use adaftr_core::data::{load_train, load_with_schema, LoadOptions};
use adaftr_core::schema::Side;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("ADAFTR_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: real data samples not found at {}", dir.display());
        None
    }
}

fn open(dir: &std::path::Path, rel: &str) -> Option<File> {
    match File::open(dir.join(rel)) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("skipping: {rel} not found ({e})");
            None
        }
    }
}

#[test]
fn aliexpress_sample() {
    let Some(dir) = data_dir() else { return };
    let (Some(train), Some(test)) =
        (open(&dir, "aliexpress-sample/train.csv"), open(&dir, "aliexpress-sample/test.csv"))
    else {
        return;
    };
    let opts = LoadOptions::default();
    let (schema, data, report) = load_train(train, "train.csv", &opts).unwrap();
    assert_eq!(schema.format, "aliexpress");
    assert_eq!((schema.num_categorical(), schema.num_numeric()), (16, 63));
    assert_eq!(schema.group.as_deref(), Some("search_id"));
    assert_eq!(schema.categorical[8].side, Side::User);
    assert_eq!(schema.categorical[9].side, Side::Item);
    assert_eq!(schema.numeric[22].side, Side::User);
    assert_eq!(schema.numeric[23].side, Side::Item);
    assert_eq!((report.rows, report.skipped), (1000, 0));
    assert_eq!((data.len(), data.clicks(), data.conversions()), (1000, 29, 10));
    // categorical_1 is 7 everywhere: one value, id 1.
    assert_eq!(schema.categorical[0].vocab(), ["7"]);
    assert!(data.cat.chunks(16).all(|r| r[0] == 1));
    // numerical_58..60 are all 0 in this sample.
    assert_eq!((schema.numeric[57].min, schema.numeric[57].max), (0.0, 0.0));
    let groups = data.group.as_ref().unwrap();
    assert_eq!(groups.len(), 1000);
    assert_eq!(*groups.iter().max().unwrap() as usize + 1, 77);
    // Numerics are in [0, 1] (up to rounding: numerical_61 reaches 1.00002) and pass through
    // unnormalised by default.
    assert!(data.num.iter().all(|x| (0.0..=1.0001).contains(x)));
    assert_eq!(schema.numeric[60].max, 1.00002);

    let (test_data, report) = load_with_schema(test, "test.csv", &schema, &opts).unwrap();
    assert_eq!(report.rows, 1000);
    assert_eq!((test_data.len(), test_data.clicks(), test_data.conversions()), (1000, 43, 10));
    // Every id is within its table.
    for row in test_data.cat.chunks(16) {
        for (id, card) in row.iter().zip(schema.cardinalities()) {
            assert!((*id as usize) < card);
        }
    }

    // One encoding path: the training file encoded with the schema fitted on it gives the
    // training loader's rows.
    let (again, _) =
        load_with_schema(open(&dir, "aliexpress-sample/train.csv").unwrap(), "train.csv", &schema, &opts).unwrap();
    assert!(again.cat == data.cat && again.num == data.num, "the training loader and the schema encode differently");
}

#[test]
fn aliccp_sample() {
    let Some(dir) = data_dir() else { return };
    let files = ["ali_ccp_train_sample.csv", "ali_ccp_val_sample.csv", "ali_ccp_test_sample.csv"];
    let Some(train) = open(&dir, &format!("aliccp-sample/{}", files[0])) else { return };
    let opts = LoadOptions::default();
    let (schema, data, report) = load_train(train, files[0], &opts).unwrap();
    assert_eq!(schema.format, "aliccp");
    assert_eq!((schema.num_categorical(), schema.num_numeric()), (23, 8));
    assert_eq!(schema.conversion, "purchase");
    assert!(schema.numeric.iter().all(|f| f.name.starts_with('D')));
    assert_eq!(schema.categorical[0].name, "101");
    assert_eq!(schema.categorical[0].side, Side::User);
    assert_eq!(schema.categorical.iter().find(|f| f.name == "206").unwrap().side, Side::Item);
    assert_eq!(schema.categorical.iter().find(|f| f.name == "301").unwrap().side, Side::Context);
    // Every column of the public sample has its documented meaning in the fitted schema.
    assert!(schema.categorical.iter().all(|f| f.info.label.is_some() && f.info.description.is_some()));
    assert!(schema.numeric.iter().all(|f| f.info.label.as_deref().is_some_and(|l| l.ends_with(" (weight)"))));
    assert_eq!(schema.categorical[0].info.label.as_deref(), Some("User ID"));
    assert!(data.group.is_none());
    assert_eq!((report.rows, data.len()), (100, 100));
    eprintln!("aliccp train: {} clicks, {} purchases", data.clicks(), data.conversions());
    for (name, rows) in [(files[1], 50), (files[2], 50)] {
        let Some(f) = open(&dir, &format!("aliccp-sample/{name}")) else { return };
        let (d, report) = load_with_schema(f, name, &schema, &opts).unwrap();
        assert_eq!((d.len(), report.rows), (rows, rows));
        assert!(d.conversions() <= d.clicks());
    }
}
