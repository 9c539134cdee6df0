//! Formatting of predictions, timings and sizes, and the plain-language reading of tau.

/// A probability as a percentage with enough digits for small rates (pCTCVR is often < 1%).
pub fn percent(p: f32) -> String {
    let pct = p as f64 * 100.0;
    if pct != 0.0 && pct.abs() < 0.1 {
        format!("{pct:.4}%")
    } else {
        format!("{pct:.2}%")
    }
}

/// A slider's value with a precision that suits its range.
pub fn show_value(x: f32, lo: f32, hi: f32) -> String {
    let span = (hi - lo).abs();
    if span >= 100.0 {
        format!("{x:.1}")
    } else if span >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// A difference of two probabilities in percentage points, signed, with the precision
/// [`percent`] gives the probabilities themselves.
pub fn points(d: f32) -> String {
    let pp = d as f64 * 100.0;
    if pp == 0.0 {
        "±0 pp".into()
    } else if pp.abs() < 0.1 {
        format!("{pp:+.4} pp")
    } else {
        format!("{pp:+.2} pp")
    }
}

/// The exact value, for data attributes (shortest text that parses back to the same f32).
pub fn exact(x: f32) -> String {
    format!("{x}")
}

/// Milliseconds with a precision that suits the size.
pub fn millis(ms: f64) -> String {
    if ms < 0.01 {
        format!("{:.1} µs", ms * 1000.0)
    } else if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

pub fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let x = n as f64;
    if x < KIB {
        format!("{n} B")
    } else if x < KIB * KIB {
        format!("{:.1} KiB", x / KIB)
    } else {
        format!("{:.1} MiB", x / KIB / KIB)
    }
}

/// How related the model considers clicking and buying for one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relatedness {
    Close,
    Moderate,
    Loose,
}

impl Relatedness {
    pub fn label(self) -> &'static str {
        match self {
            Relatedness::Close => "closely related",
            Relatedness::Moderate => "moderately related",
            Relatedness::Loose => "loosely related",
        }
    }
}

/// Where tau sits between the model's bounds (0 = tau_min, 1 = tau_max).
pub fn tau_position(tau: f32, tau_min: f32, tau_max: f32) -> f32 {
    if !matches!(tau_max.partial_cmp(&tau_min), Some(std::cmp::Ordering::Greater)) {
        return 0.5;
    }
    ((tau - tau_min) / (tau_max - tau_min)).clamp(0.0, 1.0)
}

pub fn relatedness(tau: f32, tau_min: f32, tau_max: f32) -> Relatedness {
    let p = tau_position(tau, tau_min, tau_max);
    if p < 1.0 / 3.0 {
        Relatedness::Close
    } else if p < 2.0 / 3.0 {
        Relatedness::Moderate
    } else {
        Relatedness::Loose
    }
}

/// One sentence explaining tau for this instance; `None` tau means no relatedness network.
/// `aligns`: whether the model's contrastive term uses tau (otherwise tau is a reading
/// beside the predictions, as in the default `readout` mode, and moves none of them).
pub fn tau_reading(tau: Option<f32>, tau_min: f32, tau_max: f32, aligns: bool) -> String {
    let Some(t) = tau else {
        return "This model has no relatedness network (no contrastive term), so it predicts no tau.".into();
    };
    let r = relatedness(t, tau_min, tau_max);
    let pos = tau_position(t, tau_min, tau_max) * 100.0;
    let what = match (r, aligns) {
        (Relatedness::Close, true) => {
            "the model treats clicking and purchasing as closely related here: \
             it pulls the two task representations strongly together"
        }
        (Relatedness::Close, false) => {
            "the model reads clicking and purchasing as closely related here: \
             purchases follow the click signal for instances like this one"
        }
        (Relatedness::Moderate, true) => "the model treats clicking and purchasing as moderately related here",
        (Relatedness::Moderate, false) => "the model reads clicking and purchasing as moderately related here",
        (Relatedness::Loose, true) => {
            "the model treats clicking and purchasing as only loosely related here: \
             it lets the two tasks keep separate views of this instance"
        }
        (Relatedness::Loose, false) => {
            "the model reads clicking and purchasing as only loosely related here: \
             purchases depend on other grounds than the click signal"
        }
    };
    let note = if aligns { "" } else { " This model's tau is a reading only: it does not change pCTR or pCVR." };
    format!("tau = {t:.3} ({pos:.0}% of the way from {tau_min} to {tau_max}; low tau = closely related): {what}.{note}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_keeps_small_rates_readable() {
        assert_eq!(percent(0.1234), "12.34%");
        assert_eq!(percent(0.000123), "0.0123%");
        assert_eq!(percent(0.0), "0.00%");
        assert_eq!(percent(1.0), "100.00%");
    }

    #[test]
    fn differences_in_points() {
        assert_eq!(points(0.0123), "+1.23 pp");
        assert_eq!(points(-0.000045), "-0.0045 pp");
        assert_eq!(points(0.0), "±0 pp");
    }

    #[test]
    fn exact_round_trips() {
        for x in [0.1f32, 1.0 / 3.0, 1e-7, 0.99999994] {
            assert_eq!(exact(x).parse::<f32>().unwrap(), x);
        }
    }

    #[test]
    fn timings_and_sizes() {
        assert_eq!(millis(0.0342), "34 µs");
        assert_eq!(millis(0.00421), "4.2 µs");
        assert_eq!(millis(2.345), "2.3 ms");
        assert_eq!(millis(250.4), "250 ms");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn relatedness_reading_follows_tau_bounds() {
        assert_eq!(relatedness(0.05, 0.05, 1.0), Relatedness::Close);
        assert_eq!(relatedness(0.5, 0.05, 1.0), Relatedness::Moderate);
        assert_eq!(relatedness(0.95, 0.05, 1.0), Relatedness::Loose);
        // Outside the bounds clamps; degenerate bounds read as the middle.
        assert_eq!(relatedness(5.0, 0.05, 1.0), Relatedness::Loose);
        assert_eq!(relatedness(0.3, 0.3, 0.3), Relatedness::Moderate);
        let s = tau_reading(Some(0.1), 0.05, 1.0, true);
        assert!(s.contains("closely related") && s.contains("0.100") && s.contains("pulls"), "{s}");
        // A tau the contrastive term does not use must not claim to pull anything together.
        let s = tau_reading(Some(0.1), 0.05, 1.0, false);
        assert!(s.contains("closely related") && !s.contains("pulls") && s.contains("reading only"), "{s}");
        assert!(tau_reading(None, 0.05, 1.0, false).contains("no relatedness network"));
    }
}
