//! Writing rows: the AliExpress-layout CSV line, the truth line, and the scores kept for the
//! Bayes AUCs.

use super::calibrate::Truth;
use super::catalogue::{Catalogue, Features};
use crate::metrics::auc;

/// Writes millionths in [0, 1e6] as a short decimal (`0.0`, `0.25`, `1.0`): at most six
/// decimals and never an exponent, as in the real data.
fn push_unit(buf: &mut Vec<u8>, millionths: u32) {
    if millionths == 0 {
        buf.extend_from_slice(b"0.0");
        return;
    }
    if millionths >= 1_000_000 {
        buf.extend_from_slice(b"1.0");
        return;
    }
    let mut digits = [b'0'; 6];
    let mut v = millionths;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let len = digits.iter().rposition(|&d| d != b'0').map_or(1, |p| p + 1);
    buf.extend_from_slice(b"0.");
    buf.extend_from_slice(&digits[..len]);
}

/// Formats one data row and its truth row into reusable buffers.
pub(super) struct RowWriter {
    pub line: Vec<u8>,
    pub truth: Vec<u8>,
    ints: itoa::Buffer,
    floats: ryu::Buffer,
}

impl RowWriter {
    pub(super) fn new() -> Self {
        Self {
            line: Vec::with_capacity(1024),
            truth: Vec::with_capacity(64),
            ints: itoa::Buffer::new(),
            floats: ryu::Buffer::new(),
        }
    }

    pub(super) fn row(&mut self, catalogue: &Catalogue, group: u64, x: &Features, click: bool, conversion: bool) {
        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(self.ints.format(group).as_bytes());
        for &c in &x.cats {
            line.push(b',');
            line.extend_from_slice(self.ints.format(c).as_bytes());
        }
        for (j, &w) in x.written.iter().enumerate() {
            line.push(b',');
            if catalogue.is_flag(j) {
                line.push(if w > 0 { b'1' } else { b'0' });
            } else {
                push_unit(line, w);
            }
        }
        line.extend_from_slice(if click { b",1" } else { b",0" });
        line.extend_from_slice(if conversion { b",1\n" } else { b",0\n" });
    }

    /// Shortest round-trip f32 text: exact for the f32 values the AUCs use.
    pub(super) fn truth(&mut self, t: &Truth) {
        self.truth.clear();
        for (i, v) in [t.pctr, t.pcvr, t.rho].into_iter().enumerate() {
            if i > 0 {
                self.truth.push(b',');
            }
            self.truth.extend_from_slice(self.floats.format(v as f32).as_bytes());
        }
        self.truth.push(b'\n');
    }
}

/// Labels and scores kept for the Bayes AUCs.
#[derive(Default)]
pub(super) struct Scores {
    pctr: Vec<f32>,
    pctcvr: Vec<f32>,
    /// Bit 0 click, bit 1 conversion.
    labels: Vec<u8>,
    /// pCVR of clicked rows, with their conversion labels.
    clicked_pcvr: Vec<f32>,
    clicked_pcvr_rho_bar: Vec<f32>,
    clicked_conversion: Vec<bool>,
}

/// The Bayes-optimal AUCs of a generated set.
pub(super) struct BayesAucs {
    pub ctr: Option<f64>,
    pub cvr: Option<f64>,
    pub ctcvr: Option<f64>,
    pub cvr_rho_bar: Option<f64>,
}

impl Scores {
    pub(super) fn push(&mut self, t: &Truth, click: bool, conversion: bool) {
        self.pctr.push(t.pctr as f32);
        self.pctcvr.push((t.pctr * t.pcvr) as f32);
        self.labels.push(click as u8 | (conversion as u8) << 1);
        if click {
            self.clicked_pcvr.push(t.pcvr as f32);
            self.clicked_pcvr_rho_bar.push(t.pcvr_rho_bar as f32);
            self.clicked_conversion.push(conversion);
        }
    }

    /// Each metric's f64 copy is freed before the next.
    pub(super) fn aucs(self) -> BayesAucs {
        let Scores { pctr, pctcvr, labels, clicked_pcvr, clicked_pcvr_rho_bar, clicked_conversion } = self;
        let auc_f32 = |scores: Vec<f32>, labels: &[bool]| {
            let scores: Vec<f64> = scores.into_iter().map(f64::from).collect();
            auc(&scores, labels)
        };
        let bits = |bit: u8| labels.iter().map(|l| l & bit != 0).collect::<Vec<bool>>();
        BayesAucs {
            ctr: auc_f32(pctr, &bits(1)),
            ctcvr: auc_f32(pctcvr, &bits(2)),
            cvr: auc_f32(clicked_pcvr, &clicked_conversion),
            cvr_rho_bar: auc_f32(clicked_pcvr_rho_bar, &clicked_conversion),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_formatting() {
        let fmt = |v: u32| {
            let mut b = Vec::new();
            push_unit(&mut b, v);
            String::from_utf8(b).unwrap()
        };
        assert_eq!(fmt(0), "0.0");
        assert_eq!(fmt(1_000_000), "1.0");
        assert_eq!(fmt(250_000), "0.25");
        assert_eq!(fmt(83_333), "0.083333");
        assert_eq!(fmt(1), "0.000001");
    }
}
