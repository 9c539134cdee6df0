//! The ground-truth generator: determinism, label rates, Bayes AUCs, and that its output
//! loads as AliExpress.

use adaftr_core::data::{generate, load_train, LoadOptions, SynthConfig};

fn run(cfg: &SynthConfig) -> (Vec<u8>, Vec<u8>, adaftr_core::data::SynthSummary) {
    let (mut csv, mut truth) = (Vec::new(), Vec::new());
    let summary = generate(cfg, &mut csv, &mut truth).unwrap();
    (csv, truth, summary)
}

#[test]
fn deterministic_from_seed() {
    let cfg = SynthConfig { rows: 2000, seed: 11, ..Default::default() };
    let (a, ta, sa) = run(&cfg);
    let (b, tb, sb) = run(&cfg);
    assert!(a == b && ta == tb && sa == sb);
    let (c, tc, _) = run(&SynthConfig { seed: 12, ..cfg.clone() });
    assert!(a != c && ta != tc);
    // Rows are generated in sequence: a shorter run is a prefix (up to its last group).
    let (short, _, _) = run(&SynthConfig { rows: 500, ..cfg });
    let first_lines =
        |bytes: &[u8], n: usize| bytes.split(|&b| b == b'\n').take(n).map(<[u8]>::to_vec).collect::<Vec<_>>();
    assert_eq!(first_lines(&short, 400), first_lines(&a, 400));
}

#[test]
fn rates_aucs_and_layout() {
    let cfg = SynthConfig { rows: 50_000, seed: 5, ..Default::default() };
    let (csv, truth, s) = run(&cfg);
    eprintln!("{}", serde_json::to_string_pretty(&s).unwrap());
    assert_eq!((s.rows, s.clicks), (50_000, s.clicks));
    assert!((0.02..=0.05).contains(&s.ctr), "ctr {}", s.ctr);
    assert!((0.05..=0.15).contains(&s.cvr_given_click), "cvr {}", s.cvr_given_click);
    for (name, auc) in [("ctr", s.auc_ctr), ("cvr", s.auc_cvr), ("ctcvr", s.auc_ctcvr)] {
        let auc = auc.unwrap();
        eprintln!("Bayes AUC {name}: {auc:.4}");
        assert!(auc > 0.6 && auc < 1.0, "{name} {auc}");
    }
    // rho spread over [0, 1], not piled at one end.
    let h = &s.relatedness_histogram;
    assert_eq!(h.iter().sum::<u64>(), 50_000);
    assert!(h.iter().all(|&c| c > 50_000 / 40), "{h:?}");
    assert!((0.35..0.65).contains(&s.relatedness_mean));

    // Truth: header plus one row per data row, probabilities in [0, 1].
    let truth = String::from_utf8(truth).unwrap();
    let mut lines = truth.lines();
    assert_eq!(lines.next(), Some("true_pctr,true_pcvr,true_relatedness"));
    let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), 50_000);
    assert!(rows.iter().flatten().all(|p| (0.0..=1.0).contains(p)));
    let mean_pctr = rows.iter().map(|r| r[0]).sum::<f64>() / 50_000.0;
    assert!((mean_pctr - cfg.ctr).abs() < 0.01, "{mean_pctr}");

    // The data loads as AliExpress, with the stated cardinalities and labels.
    let (schema, data, report) = load_train(&csv[..], "synth.csv", &LoadOptions::default()).unwrap();
    assert_eq!(schema.format, "aliexpress");
    assert_eq!(report.rows, 50_000);
    assert_eq!((data.clicks(), data.conversions()), (s.clicks, s.conversions));
    let cards = schema.cardinalities();
    eprintln!("cardinalities (with OOV): {cards:?}");
    assert!(cards.iter().filter(|&&c| c <= 6).count() >= 4);
    assert!(cards.iter().filter(|&&c| (11..=101).contains(&c)).count() >= 4);
    assert!(cards.iter().any(|&c| c > 500));
    assert!(data.num.iter().all(|x| (0.0..=1.0).contains(x)));
    for flag in 57..60 {
        assert_eq!(schema.numeric[flag].max, 1.0);
        assert!(data.num.chunks(63).all(|r| r[flag] == 0.0 || r[flag] == 1.0));
    }
    // search_id groups share the user side.
    let groups = data.group.as_ref().unwrap();
    assert_eq!(groups.len(), 50_000);
    assert_eq!(*groups.iter().max().unwrap() as usize + 1, s.groups);
    for i in 1..data.len() {
        if groups[i] == groups[i - 1] {
            assert_eq!(data.cat_row(i)[..9], data.cat_row(i - 1)[..9]);
            assert_eq!(data.num_row(i)[..23], data.num_row(i - 1)[..23]);
        }
    }
}

#[test]
fn zero_rows_and_no_auc() {
    let (csv, truth, s) = run(&SynthConfig { rows: 0, ..Default::default() });
    assert_eq!(s.rows, 0);
    assert_eq!(s.auc_ctr, None);
    assert_eq!(csv.iter().filter(|&&b| b == b'\n').count(), 1);
    assert_eq!(truth, b"true_pctr,true_pcvr,true_relatedness\n");
    let (_, _, s) = run(&SynthConfig { rows: 1000, compute_auc: false, ..Default::default() });
    assert_eq!((s.auc_ctr, s.auc_cvr, s.auc_ctcvr), (None, None, None));
}
