//! The page's state in the URL fragment, so a link reproduces what its sender saw: the
//! instance and the swept feature.
//!
//! `v=1&sweep=n.price&c.segment=loyal&c.slot=&n.price=12.5`: a version, then one entry per
//! field, keyed by kind (`c.` categorical, `n.` numeric) and field name, in the schema's
//! order; keys and values are percent-encoded.
//!
//! - By name, not position: a link still means the same thing to a model retrained with
//!   its fields in another order, and a field another model lacks is recognisably foreign.
//! - Categoricals by raw value, not id: ids follow the vocabulary's order, which changes
//!   whenever a model is refitted on other data; the value (`examples.json` keeps them
//!   the same way) does not. Empty is OOV, as in the training data.
//! - Numerics as the shortest decimal that parses back to the same f32, so a link
//!   reproduces the instance, and so the prediction, bit for bit.
//!
//! Reading is forgiving, entry by entry: a field the model does not have, a value it cannot
//! use or a number outside its range (clamped, as the editor does) never stops the rest
//! from applying, and is reported in [`Decoded::note`].

use adaftr_core::inference::Instance;
use adaftr_core::schema::Schema;

use crate::editor::{default_instance, set_numeric};
use crate::format::exact;
use crate::sweep::FeatureRef;

/// The encoding's version; a fragment of another version is ignored as a whole.
pub const VERSION: &str = "1";

/// The fragment (without `#`) for an instance of `schema` and the swept feature.
pub fn encode(schema: &Schema, inst: &Instance, sweep: Option<FeatureRef>) -> String {
    let mut out = format!("v={VERSION}");
    if let Some(name) = sweep.and_then(|f| f.name(schema)) {
        let kind = if matches!(sweep, Some(FeatureRef::Cat(_))) { "c" } else { "n" };
        out.push_str(&format!("&sweep={kind}.{}", escape(name)));
    }
    for (f, &id) in schema.categorical.iter().zip(&inst.cat) {
        out.push_str(&format!("&c.{}={}", escape(&f.name), escape(f.decode(id).unwrap_or(""))));
    }
    for (f, &x) in schema.numeric.iter().zip(&inst.num) {
        out.push_str(&format!("&n.{}={}", escape(&f.name), exact(x)));
    }
    out
}

/// What a fragment sets on a model's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The default instance with every usable entry applied.
    pub instance: Instance,
    pub sweep: Option<FeatureRef>,
    /// Entries left out (decoded keys): unknown fields, values the model cannot use.
    pub dropped: Vec<String>,
    /// Numeric fields whose value was clamped into the model's range.
    pub clamped: Vec<String>,
}

impl Decoded {
    /// A short sentence for the page when the link did not apply in full.
    pub fn note(&self) -> Option<String> {
        let list = |v: &[String]| {
            let mut s = v.iter().take(4).map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
            if v.len() > 4 {
                s.push_str(&format!(" and {} more", v.len() - 4));
            }
            s
        };
        let mut parts = Vec::new();
        if !self.dropped.is_empty() {
            parts.push(format!(
                "ignored {} this model cannot use: {}",
                entries(self.dropped.len()),
                list(&self.dropped)
            ));
        }
        if !self.clamped.is_empty() {
            parts.push(format!(
                "clamped {} into this model's range: {}",
                values(self.clamped.len()),
                list(&self.clamped)
            ));
        }
        (!parts.is_empty()).then(|| format!("The link did not fit this model in full: {}.", parts.join("; ")))
    }
}

fn entries(n: usize) -> String {
    if n == 1 {
        "1 entry".into()
    } else {
        format!("{n} entries")
    }
}

fn values(n: usize) -> String {
    if n == 1 {
        "1 value".into()
    } else {
        format!("{n} values")
    }
}

/// Reads a fragment (with or without its `#`) against `schema`. `Ok(None)`: it holds no
/// state of this page (empty, or an ordinary anchor), so nothing changes. `Err`: a state
/// of another version, ignored, with a sentence saying so.
pub fn decode(schema: &Schema, fragment: &str) -> Result<Option<Decoded>, String> {
    let fragment = fragment.strip_prefix('#').unwrap_or(fragment);
    let pairs: Vec<(&str, &str)> =
        fragment.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))).collect();
    match pairs.iter().rev().find(|(k, _)| *k == "v") {
        None => return Ok(None),
        Some((_, v)) if *v != VERSION => {
            return Err(format!(
                "The link's state is in a format this page does not read (v={}); it was ignored.",
                unescape(v).unwrap_or_else(|| v.to_string())
            ))
        }
        Some(_) => {}
    }
    let mut d = Decoded { instance: default_instance(schema), sweep: None, dropped: Vec::new(), clamped: Vec::new() };
    for &(raw_key, raw_value) in &pairs {
        if raw_key == "v" {
            continue;
        }
        let key = unescape(raw_key);
        let shown = key.clone().unwrap_or_else(|| raw_key.to_string());
        if !apply(schema, &mut d, key.as_deref(), unescape(raw_value).as_deref()) {
            d.dropped.push(shown);
        }
    }
    Ok(Some(d))
}

/// One entry; false when it could not be used.
fn apply(schema: &Schema, d: &mut Decoded, key: Option<&str>, value: Option<&str>) -> bool {
    let (Some(key), Some(value)) = (key, value) else { return false };
    let feature = |kind_name: &str| -> Option<FeatureRef> {
        let (kind, name) = kind_name.split_once('.')?;
        match kind {
            "c" => schema.categorical.iter().position(|f| f.name == name).map(FeatureRef::Cat),
            "n" => schema.numeric.iter().position(|f| f.name == name).map(FeatureRef::Num),
            _ => None,
        }
    };
    if key == "sweep" {
        d.sweep = feature(value);
        return d.sweep.is_some();
    }
    match feature(key) {
        Some(FeatureRef::Cat(i)) => {
            let id = schema.categorical[i].encode(value);
            d.instance.cat[i] = id;
            // A value the vocabulary lacks reads as OOV, which is not what the link showed.
            id != 0 || value.is_empty()
        }
        Some(FeatureRef::Num(i)) => match value.parse::<f32>() {
            Ok(x) if x.is_finite() => {
                set_numeric(schema, &mut d.instance, i, x);
                if d.instance.num[i] != x {
                    d.clamped.push(key.to_string());
                }
                true
            }
            _ => false,
        },
        None => false,
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`escape`] (any `%XX` accepted); `None` for a broken escape or bytes that
/// are not UTF-8.
fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{demo_schema, other_schema};
    use crate::editor::random_instance;
    use adaftr_core::rng::Rng;
    use adaftr_core::schema::CategoricalField;

    #[test]
    fn random_instances_round_trip_exactly() {
        let mut s = demo_schema();
        // Values that need escaping, and one that looks like a number.
        s.categorical[0] = CategoricalField::new(
            "seg ment&=#",
            Default::default(),
            ["a b", "x&y=z", "100%", "naïve", "#1", "12.5"].map(String::from).to_vec(),
        );
        let mut rng = Rng::new(11);
        for seed in 0..300 {
            let mut inst = random_instance(&s, seed);
            // OOV, the range's ends, and values with long expansions.
            if seed % 3 == 0 {
                let k = rng.below(inst.cat.len() as u64) as usize;
                inst.cat[k] = 0;
            }
            if seed % 5 == 0 {
                inst.num[0] = s.numeric[0].min;
                inst.num[1] = s.numeric[1].max;
                inst.num[2] = 7.0 / 3.0;
            }
            let sweep = crate::sweep::all_features(&s)[seed as usize % 9];
            let frag = encode(&s, &inst, Some(sweep));
            let d = decode(&s, &format!("#{frag}")).unwrap().unwrap();
            assert_eq!(d.instance, inst, "{frag}");
            assert_eq!(d.sweep, Some(sweep));
            assert!(d.dropped.is_empty() && d.clamped.is_empty() && d.note().is_none(), "{frag}: {d:?}");
        }
        let frag = encode(&s, &random_instance(&s, 1), None);
        assert!(frag.starts_with("v=1&c.seg%20ment%26%3D%23="), "{frag}");
        assert!(!frag.contains("sweep"));
    }

    #[test]
    fn not_ours_or_another_version_changes_nothing() {
        let s = demo_schema();
        for f in ["", "#", "#top", "#adaftr-chart", "a=1&b=2", "#&&&"] {
            assert_eq!(decode(&s, f), Ok(None), "{f}");
        }
        let e = decode(&s, "#v=2&c.slot=top").unwrap_err();
        assert!(e.contains("v=2") && e.contains("ignored"), "{e}");
        assert!(decode(&s, "v=%ZZ").unwrap_err().contains("v=%ZZ"));
    }

    #[test]
    fn garbage_is_dropped_entry_by_entry() {
        let s = demo_schema();
        let frag = "v=1&c.slot=bottom&n.item_price=1e9&n.item_rating=abc&n.position=NaN&c.nope=1&x&%E2%28=1\
                    &c.user_segment=%ZZ&c.brand_tier=never-seen&n.user_ctr_30d=0.125&sweep=c.missing&=&c.query_intent=";
        let d = decode(&s, frag).unwrap().unwrap();
        let mut want = default_instance(&s);
        want.cat[4] = s.categorical[4].encode("bottom");
        want.num[1] = s.numeric[1].max;
        want.num[0] = 0.125;
        want.cat[3] = 0;
        want.cat[1] = 0;
        assert_eq!(d.instance, want);
        assert_eq!(d.sweep, None);
        assert_eq!(
            d.dropped,
            ["n.item_rating", "n.position", "c.nope", "x", "%E2%28", "c.user_segment", "c.brand_tier", "sweep", ""]
        );
        assert_eq!(d.clamped, ["n.item_price"]);
        let note = d.note().unwrap();
        assert!(note.contains("ignored 9 entries") && note.contains("and 5 more") && note.contains("clamped 1 value"));
        // Nothing at all panics on arbitrary bytes.
        let mut rng = Rng::new(3);
        for _ in 0..2000 {
            let len = rng.below(40) as usize;
            let junk: String = (0..len).map(|_| char::from(b"v=1&%.cn_xZ9#"[rng.below(13) as usize])).collect();
            let _ = decode(&s, &junk);
        }
    }

    #[test]
    fn a_link_from_another_schema_applies_what_matches() {
        let (a, b) = (demo_schema(), other_schema());
        let frag = encode(&b, &random_instance(&b, 4), Some(FeatureRef::Num(1)));
        let d = decode(&a, &frag).unwrap().unwrap();
        assert_eq!(d.instance, default_instance(&a), "no field in common: the defaults");
        assert_eq!(d.dropped.len(), 1 + b.num_categorical() + b.num_numeric(), "{:?}", d.dropped);
        assert_eq!(d.sweep, None);

        // A schema sharing some fields (renamed others) takes those.
        let mut c = a.clone();
        c.numeric[0].name = "renamed".into();
        let inst = random_instance(&a, 9);
        let d = decode(&c, &encode(&a, &inst, Some(FeatureRef::Cat(2)))).unwrap().unwrap();
        assert_eq!(d.instance.cat, inst.cat);
        assert_eq!(&d.instance.num[1..], &inst.num[1..]);
        assert_eq!(d.instance.num[0], default_instance(&c).num[0]);
        assert_eq!(d.dropped, ["n.user_ctr_30d"]);
        assert_eq!(d.sweep, Some(FeatureRef::Cat(2)));
    }

    #[test]
    fn escapes_round_trip() {
        for s in ["", "plain", "a b&c=d#e%f", "ünï©ode", "100%"] {
            assert_eq!(unescape(&escape(s)).as_deref(), Some(s));
        }
        assert_eq!(unescape("%4"), None);
        assert_eq!(unescape("%FF"), None, "not UTF-8");
        assert_eq!(unescape("%41b"), Some("Ab".into()));
    }
}
