//! Building and editing the instance shown in the feature editor, and the example
//! instances shipped with a model (`examples.json`).
//!
//! `examples.json` is a list of `{ "label": "...", "features": { "<field>": <value> } }`,
//! raw values keyed by field name: a string (or number) from the vocabulary for a
//! categorical field, a number for a numeric one. Missing fields keep their default,
//! unknown categorical values become OOV, so one file works across retrained vocabularies.

use std::collections::BTreeMap;

use adaftr_core::inference::Instance;
use adaftr_core::rng::Rng;
use adaftr_core::schema::{NumericField, Schema};
use serde::{Deserialize, Serialize};

/// A named example instance in raw values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    #[serde(default)]
    pub label: String,
    pub features: BTreeMap<String, serde_json::Value>,
}

pub fn parse_examples(json: &str) -> Result<Vec<Example>, String> {
    serde_json::from_str(json).map_err(|e| format!("examples.json is not a list of examples: {e}"))
}

/// The examples that set at least one field of `schema` (examples written for another
/// model's schema would only show defaults, so they are dropped).
pub fn examples_for(schema: &Schema, examples: Vec<Example>) -> Vec<Example> {
    let known = |name: &String| {
        schema.categorical.iter().any(|f| &f.name == name) || schema.numeric.iter().any(|f| &f.name == name)
    };
    examples.into_iter().filter(|e| e.features.keys().any(known)).collect()
}

/// The slider range of a numeric field: its raw training range, made non-empty and finite.
pub fn numeric_range(f: &NumericField) -> (f32, f32) {
    let (lo, hi) = (f.min, f.max);
    match (lo.is_finite(), hi.is_finite()) {
        (true, true) if hi > lo => (lo, hi),
        (true, true) => (lo, lo + 1.0),
        (true, false) => (lo, lo + 1.0),
        (false, true) => (hi - 1.0, hi),
        (false, false) => (0.0, 1.0),
    }
}

/// The starting instance: the first known value of each categorical field (OOV when the
/// vocabulary is empty) and the middle of each numeric range.
pub fn default_instance(schema: &Schema) -> Instance {
    Instance {
        cat: schema.categorical.iter().map(|f| u32::from(!f.vocab().is_empty())).collect(),
        num: schema
            .numeric
            .iter()
            .map(|f| {
                let (lo, hi) = numeric_range(f);
                lo + (hi - lo) / 2.0
            })
            .collect(),
    }
}

/// Sets categorical field `i` to `id`; out-of-range ids become OOV (0).
pub fn set_categorical(schema: &Schema, inst: &mut Instance, i: usize, id: u32) {
    if let (Some(f), Some(slot)) = (schema.categorical.get(i), inst.cat.get_mut(i)) {
        *slot = if (id as usize) < f.cardinality() { id } else { 0 };
    }
}

/// Sets numeric field `i` to a raw value, clamped into the slider range; non-finite
/// values are ignored.
pub fn set_numeric(schema: &Schema, inst: &mut Instance, i: usize, x: f32) {
    if !x.is_finite() {
        return;
    }
    if let (Some(f), Some(slot)) = (schema.numeric.get(i), inst.num.get_mut(i)) {
        let (lo, hi) = numeric_range(f);
        *slot = x.clamp(lo, hi);
    }
}

/// A random instance: known categorical values drawn uniformly, numerics uniform in range.
pub fn random_instance(schema: &Schema, seed: u64) -> Instance {
    let mut rng = Rng::new(seed);
    Instance {
        cat: schema
            .categorical
            .iter()
            .map(|f| if f.vocab().is_empty() { 0 } else { 1 + rng.below(f.vocab().len() as u64) as u32 })
            .collect(),
        num: schema
            .numeric
            .iter()
            .map(|f| {
                let (lo, hi) = numeric_range(f);
                lo + (hi - lo) * rng.next_f32()
            })
            .collect(),
    }
}

/// The instance of an example, starting from the default for anything it does not set.
pub fn instance_from_example(schema: &Schema, ex: &Example) -> Instance {
    let mut inst = default_instance(schema);
    for (i, f) in schema.categorical.iter().enumerate() {
        if let Some(v) = ex.features.get(&f.name) {
            let raw = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            inst.cat[i] = f.encode(&raw);
        }
    }
    for (i, f) in schema.numeric.iter().enumerate() {
        if let Some(x) = ex.features.get(&f.name).and_then(serde_json::Value::as_f64) {
            set_numeric(schema, &mut inst, i, x as f32);
        }
    }
    inst
}

/// The raw-value example of an instance (inverse of [`instance_from_example`] for known values).
pub fn example_from_instance(schema: &Schema, label: &str, inst: &Instance) -> Example {
    let mut features = BTreeMap::new();
    for (f, &id) in schema.categorical.iter().zip(&inst.cat) {
        if let Some(raw) = f.decode(id) {
            features.insert(f.name.clone(), serde_json::Value::String(raw.to_string()));
        }
    }
    for (f, &x) in schema.numeric.iter().zip(&inst.num) {
        features.insert(f.name.clone(), serde_json::json!(x));
    }
    Example { label: label.to_string(), features }
}

/// What the editor's fields off the screen show. An edit that changes many fields (an
/// example, Reset, a link) changes every input, and most inputs are off the screen: their
/// DOM updates wait for a render of their own after the edit's frame is painted, so the
/// edit's own frame holds only what is in view (the inputs there, the predictions, the
/// charts). An edit of one field (a slider dragged) changes its input at once, as there is
/// nothing to save.
#[derive(Debug, Clone)]
pub struct OffScreen {
    model: Option<u64>,
    /// The state's instance at the last [`see`](Self::see).
    latest: Instance,
    /// What the fields off the screen show.
    shown: Instance,
}

impl OffScreen {
    pub fn new(model: Option<u64>, inst: &Instance) -> Self {
        Self { model, latest: inst.clone(), shown: inst.clone() }
    }

    /// The state is `inst` of `model`: what fields off the screen show while they are behind
    /// it (`None`: they show `inst`). A new model shows its instance everywhere at once.
    pub fn see(&mut self, model: Option<u64>, inst: &Instance) -> Option<Instance> {
        let behind = self.shown != self.latest;
        let changed = fields_changed(&self.latest, inst);
        self.latest = inst.clone();
        if self.model != model || (!behind && changed <= 1) {
            self.model = model;
            self.shown = inst.clone();
        }
        (self.shown != *inst).then(|| self.shown.clone())
    }

    /// The fields off the screen follow the state's instance.
    pub fn catch_up(&mut self) {
        self.shown = self.latest.clone();
    }
}

/// How many fields differ between two instances of one schema.
fn fields_changed(a: &Instance, b: &Instance) -> usize {
    let cat = a.cat.iter().zip(&b.cat).filter(|(x, y)| x != y).count();
    let num = a.num.iter().zip(&b.num).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
    cat + num + a.cat.len().abs_diff(b.cat.len()) + a.num.len().abs_diff(b.num.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::demo_schema;

    #[test]
    fn default_instance_is_valid_and_centred() {
        let s = demo_schema();
        let inst = default_instance(&s);
        assert_eq!(inst.cat.len(), s.num_categorical());
        assert!(inst.cat.iter().all(|&c| c == 1));
        for (f, &x) in s.numeric.iter().zip(&inst.num) {
            assert!((x - (f.min + f.max) / 2.0).abs() < 1e-4);
        }
    }

    #[test]
    fn edits_are_clamped_to_the_schema() {
        let s = demo_schema();
        let mut inst = default_instance(&s);
        set_categorical(&s, &mut inst, 0, 2);
        assert_eq!(inst.cat[0], 2);
        set_categorical(&s, &mut inst, 0, 10_000);
        assert_eq!(inst.cat[0], 0, "out-of-range id becomes OOV");
        let (lo, hi) = numeric_range(&s.numeric[0]);
        set_numeric(&s, &mut inst, 0, hi + 100.0);
        assert_eq!(inst.num[0], hi);
        set_numeric(&s, &mut inst, 0, lo - 100.0);
        assert_eq!(inst.num[0], lo);
        set_numeric(&s, &mut inst, 0, f32::NAN);
        assert_eq!(inst.num[0], lo);
        // Indices past the schema are ignored rather than panicking.
        set_numeric(&s, &mut inst, 99, 1.0);
        set_categorical(&s, &mut inst, 99, 1);
    }

    #[test]
    fn degenerate_ranges_still_give_a_slider() {
        let mut f = NumericField::identity("x", Default::default());
        (f.min, f.max) = (3.0, 3.0);
        assert_eq!(numeric_range(&f), (3.0, 4.0));
        (f.min, f.max) = (f32::NAN, f32::INFINITY);
        assert_eq!(numeric_range(&f), (0.0, 1.0));
    }

    #[test]
    fn random_instances_are_in_range_and_seeded() {
        let s = demo_schema();
        let a = random_instance(&s, 7);
        assert_eq!(a, random_instance(&s, 7));
        assert_ne!(a, random_instance(&s, 8));
        for (f, &c) in s.categorical.iter().zip(&a.cat) {
            assert!(c >= 1 && (c as usize) < f.cardinality());
        }
        for (f, &x) in s.numeric.iter().zip(&a.num) {
            assert!(x >= f.min && x <= f.max);
        }
    }

    #[test]
    fn examples_round_trip_and_tolerate_unknowns() {
        let s = demo_schema();
        let inst = random_instance(&s, 3);
        let ex = example_from_instance(&s, "one", &inst);
        let json = serde_json::to_string(&vec![ex]).unwrap();
        let parsed = parse_examples(&json).unwrap();
        assert_eq!(parsed[0].label, "one");
        assert_eq!(instance_from_example(&s, &parsed[0]), inst);

        let odd = parse_examples(&format!(
            r#"[{{"features": {{"{}": "never-seen", "no_such_field": 1}}}}]"#,
            s.categorical[0].name
        ))
        .unwrap();
        let got = instance_from_example(&s, &odd[0]);
        assert_eq!(got.cat[0], 0, "unknown value is OOV");
        assert_eq!(&got.cat[1..], &default_instance(&s).cat[1..]);
        assert!(parse_examples("{\"not\": \"a list\"}").is_err());
        assert_eq!(examples_for(&s, odd.clone()).len(), 1);
        let foreign = parse_examples(r#"[{"features": {"no_such_field": 1}}]"#).unwrap();
        assert!(examples_for(&s, foreign).is_empty());
    }

    #[test]
    fn fields_off_the_screen_follow_a_many_field_edit_after_a_catch_up() {
        let s = demo_schema();
        let a = default_instance(&s);
        let mut off = OffScreen::new(Some(1), &a);
        assert_eq!(off.see(Some(1), &a), None, "nothing changed");
        // One field: everything follows at once.
        let mut one = a.clone();
        set_numeric(&s, &mut one, 0, 0.7);
        assert_eq!(off.see(Some(1), &one), None);
        // Many fields: the fields off the screen keep the last instance until the catch-up.
        let many = random_instance(&s, 3);
        assert!(fields_changed(&one, &many) > 1);
        assert_eq!(off.see(Some(1), &many), Some(one.clone()));
        assert_eq!(off.see(Some(1), &many), Some(one.clone()), "a render that changes nothing");
        // A one-field edit while behind stays behind: the catch-up brings everything.
        let mut more = many.clone();
        set_numeric(&s, &mut more, 0, 0.1);
        assert_eq!(off.see(Some(1), &more), Some(one.clone()));
        off.catch_up();
        assert_eq!(off.see(Some(1), &more), None);
        // A new model shows its instance everywhere at once, even a different schema's.
        let other = Instance { cat: vec![0], num: vec![] };
        assert_eq!(off.see(Some(2), &other), None);
    }
}
