//! `adaftr train --help` states what training does without a config file: the defaults it
//! names are read back here and compared with core's `Config::default()`, and every
//! backbone and relatedness mode is described.

use adaftr_core::config::{Backbone, ClMode, Config};

mod common;
use common::*;

/// The `--name` section of a long help text: its lines up to the next option.
fn section<'a>(help: &'a str, name: &str) -> Vec<&'a str> {
    let start = format!("--{name} <");
    let mut lines = help.lines().skip_while(|l| !l.trim_start().starts_with(&start));
    let first = lines.next().unwrap_or_else(|| panic!("no --{name} in the help:\n{help}"));
    std::iter::once(first).chain(lines.take_while(|l| !l.trim_start().starts_with("--"))).collect()
}

/// The `key value` pairs of the "Default without --config:" sentence of a section.
fn stated_defaults(lines: &[&str]) -> Vec<(String, String)> {
    let line =
        lines.iter().find_map(|l| l.trim().strip_prefix("Default without --config: ")).expect("no defaults stated");
    let pairs = line.trim_end_matches('.');
    // Split on ", " outside brackets (the projection widths are a list).
    let (mut out, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for ch in pairs.chars() {
        match ch {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        if ch == ',' && depth == 0 {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    out.push(cur);
    out.iter()
        .map(|p| {
            let (k, v) = p.trim().split_once(' ').unwrap_or_else(|| panic!("not `key value`: {p}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The possible values listed in a section, with their help.
fn possible_values(lines: &[&str]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, help)| (name.trim().to_string(), help.trim().to_string()))
        .collect()
}

#[test]
fn train_help_states_the_real_defaults_and_every_mode() {
    let help = stdout(ok(&["train", "--help"]));
    let d = Config::default();
    let input = serde_json::to_value(d.model.relatedness_input).unwrap().as_str().unwrap().to_string();
    let expected = vec![
        ("backbone".to_string(), d.model.backbone.name().to_string()),
        ("--cl".to_string(), d.loss.cl.name().to_string()),
        (
            "projection".to_string(),
            if d.model.projection.is_empty() { "none".into() } else { format!("{:?}", d.model.projection) },
        ),
        ("relatedness_input".to_string(), input),
    ];
    for name in ["model", "cl"] {
        assert_eq!(stated_defaults(&section(&help, name)), expected, "--{name} states other defaults:\n{help}");
    }

    let models = possible_values(&section(&help, "model"));
    let mut names = vec!["adaftr".to_string()];
    names.extend(Backbone::ALL.map(|b| b.name().to_string()));
    assert_eq!(models.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), names);
    let modes = possible_values(&section(&help, "cl"));
    assert_eq!(modes.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), ClMode::ALL.map(|c| c.name().to_string()));
    for (name, text) in models.iter().chain(&modes) {
        assert!(text.len() > 15, "`{name}` is not described: {text:?}");
    }

    for (flag, value) in [
        ("epochs", d.train.epochs.to_string()),
        ("batch-size", d.train.batch_size.to_string()),
        ("lr", d.train.lr.to_string()),
        ("seed", d.train.seed.to_string()),
    ] {
        let text = section(&help, flag).join(" ");
        assert!(text.contains(&format!("(default without --config: {value})")), "--{flag}: {text}");
    }
}
