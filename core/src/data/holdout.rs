//! Holding out a validation split from one labelled CSV, for training from a single file
//! (the browser's Train panel): a row goes to validation by a seeded hash of its group key
//! (AliExpress's `search_id`, a spec's `group` column), so that all rows of a search stay on
//! one side and group AUC is measured on searches the model never saw; by a hash of its
//! position when the layout has no group column. Both parts are CSV text with the header,
//! read afterwards by the usual loaders (the schema is fitted on the training part only).

use std::io::Read;

use super::csv::{split_fields, ReadError};
use super::format::{detect, SchemaSpec};
use super::rows::read_header;
use crate::error::{Error, Location, Result};
use crate::rng::{fnv1a, FNV_OFFSET};

/// The two parts of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holdout {
    /// CSV text (header, then rows), plain even when the input was gzipped.
    pub train: Vec<u8>,
    pub valid: Vec<u8>,
    /// The input's line number of each row of each part (the header is line 1), so that an
    /// error found in a part can name the line of the file the user gave.
    pub train_lines: Vec<u64>,
    pub valid_lines: Vec<u64>,
    /// The column the split went by, if the layout has a group column.
    pub group: Option<String>,
}

fn mix(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = fnv1a(FNV_OFFSET ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), bytes);
    // A final avalanche, so that nearby keys spread over [0, 1).
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// Splits `reader` (CSV, plain or gzipped) into training and validation text, about
/// `fraction` of the rows (of the groups) going to validation. The layout is detected from
/// the header, as the loaders do, unless `spec` is given. Blank lines are dropped; every
/// other line is kept as it is (a malformed row is reported later, by the loader, at its
/// line in its part).
pub fn holdout<R: Read>(
    reader: R,
    label: &str,
    spec: Option<&SchemaSpec>,
    fraction: f64,
    seed: u64,
) -> Result<Holdout> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::Config(format!("the validation fraction must be between 0 and 1, got {fraction}")));
    }
    let (mut lines, header) = read_header(reader, label)?;
    let group = match spec {
        Some(s) => s.group.clone(),
        None => detect(&header, label)?.1.group,
    };
    let column = group.as_ref().and_then(|g| header.iter().position(|h| h == g));
    let mut head = Vec::new();
    for (i, name) in header.iter().enumerate() {
        if i > 0 {
            head.push(b',');
        }
        super::csv::push_field(&mut head, name.as_bytes());
    }
    head.push(b'\n');
    let (mut train, mut valid) = (head.clone(), head);
    let (mut train_lines, mut valid_lines) = (Vec::new(), Vec::new());
    let (mut spans, mut scratch) = (Vec::new(), Vec::new());
    let cut = (fraction * u64::MAX as f64) as u64;
    let mut row = 0u64;
    loop {
        let (line_no, line) = match lines.next_line() {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(ReadError::Io(source)) => return Err(Error::Io { file: label.to_string(), source }),
            Err(ReadError::TooLong { .. }) => {
                return Err(Error::Input { file: label.to_string(), reason: "a line is too long".into() })
            }
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let key = match column {
            Some(c) => {
                let quoted = split_fields(line, &mut spans, &mut scratch).map_err(|e| Error::Data {
                    location: Location { file: label.to_string(), line: line_no, column: header.get(e.field).cloned() },
                    value: None,
                    reason: "unterminated quote".into(),
                })?;
                let source: &[u8] = if quoted { &scratch } else { line };
                let s = spans.get(c).ok_or_else(|| Error::Data {
                    location: Location { file: label.to_string(), line: line_no, column: group.clone() },
                    value: None,
                    reason: format!("the row has {} fields, the header {}", spans.len(), header.len()),
                })?;
                mix(seed, source[s.start as usize..s.end as usize].trim_ascii())
            }
            None => mix(seed, &row.to_le_bytes()),
        };
        row += 1;
        let (out, lines) = if key < cut { (&mut valid, &mut valid_lines) } else { (&mut train, &mut train_lines) };
        out.extend_from_slice(line);
        out.push(b'\n');
        lines.push(line_no);
    }
    let (train_rows, valid_rows) = (train_lines.len(), valid_lines.len());
    if train_rows < 2 || valid_rows == 0 {
        return Err(Error::Input {
            file: label.to_string(),
            reason: format!(
                "{} rows{} are too few to hold out {:.0}% for validation (got {train_rows} for training, \
                 {valid_rows} for validation)",
                train_rows + valid_rows,
                group.as_ref().map_or(String::new(), |g| format!(" (split by `{g}`)")),
                fraction * 100.0
            ),
        });
    }
    Ok(Holdout { train, valid, train_lines, valid_lines, group: column.and(group) })
}

impl Holdout {
    /// `e`, found by a loader in a part whose rows came from `lines`, located at the line of
    /// the input instead.
    pub fn relocate(e: Error, lines: &[u64]) -> Error {
        match e {
            Error::Data { mut location, value, reason } => {
                let row = (location.line as usize).checked_sub(2);
                if let Some(&line) = row.and_then(|r| lines.get(r)) {
                    location.line = line;
                }
                Error::Data { location, value, reason }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(rows: usize, groups: usize) -> String {
        let mut s = String::from("search_id,u,x,click,conversion\n");
        for r in 0..rows {
            s.push_str(&format!("s{},v{},{},{},0\n", r % groups, r % 7, r, r % 2));
        }
        s
    }

    fn spec() -> SchemaSpec {
        SchemaSpec {
            categorical: vec!["u".into()],
            numeric: vec!["x".into()],
            group: Some("search_id".into()),
            ..SchemaSpec::default()
        }
    }

    #[test]
    fn groups_stay_together_and_the_fraction_is_about_right() {
        let text = csv(20_000, 1_000);
        let h = holdout(text.as_bytes(), "t.csv", Some(&spec()), 0.2, 7).unwrap();
        assert!((h.valid_lines.len() as f64 / 20_000.0 - 0.2).abs() < 0.05, "{}", h.valid_lines.len());
        assert_eq!(h.group.as_deref(), Some("search_id"));
        let groups = |t: &[u8]| -> std::collections::BTreeSet<String> {
            String::from_utf8_lossy(t).lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect()
        };
        assert!(groups(&h.train).is_disjoint(&groups(&h.valid)));
        // Each part's rows know their line in the input: the first data row is line 2.
        let line_of = |l: u64| text.lines().nth(l as usize - 1).unwrap().to_string();
        let first_valid = String::from_utf8_lossy(&h.valid).lines().nth(1).unwrap().to_string();
        assert_eq!(line_of(h.valid_lines[0]), first_valid);
        assert_eq!(h.train_lines.len() + h.valid_lines.len(), 20_000);
        // The same seed gives the same split; another seed another.
        assert_eq!(holdout(text.as_bytes(), "t.csv", Some(&spec()), 0.2, 7).unwrap(), h);
        assert_ne!(holdout(text.as_bytes(), "t.csv", Some(&spec()), 0.2, 8).unwrap().valid, h.valid);
    }

    #[test]
    fn without_a_group_column_rows_are_split_one_by_one() {
        let text = csv(5_000, 1);
        let no_group = SchemaSpec { group: None, ..spec() };
        let h = holdout(text.as_bytes(), "t.csv", Some(&no_group), 0.3, 1).unwrap();
        let v = h.valid_lines.len();
        assert!(h.group.is_none() && v > 1_000 && v < 2_000, "{v}");
    }

    #[test]
    fn too_few_rows_and_bad_fractions_are_refused() {
        let e = holdout(csv(3, 1).as_bytes(), "t.csv", Some(&spec()), 0.5, 1).unwrap_err().to_string();
        assert!(e.contains("t.csv") && e.contains("too few"), "{e}");
        assert!(holdout(csv(30, 30).as_bytes(), "t.csv", Some(&spec()), 1.0, 1).is_err());
        let e = holdout("a,b\n1,2\n".as_bytes(), "odd.csv", None, 0.2, 1).unwrap_err().to_string();
        assert!(e.contains("odd.csv") && e.contains("click"), "{e}");
    }
}
