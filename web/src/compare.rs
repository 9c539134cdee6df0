//! Comparing two models on the same instance. The instance is edited in the first model's
//! schema; the second model sees it mapped by field name through raw values (the same
//! path as `examples.json`), so two models fitted on different data, or with other fields,
//! still compare on what they share.

use adaftr_core::bundle::Bundle;
use adaftr_core::inference::{Instance, Prediction};
use adaftr_core::schema::Schema;

use crate::editor::{example_from_instance, instance_from_example};
use crate::sweep::SweepPlan;

/// An instance of one schema in another.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub instance: Instance,
    /// Fields of the second schema that took their value from the first (same name, same
    /// kind); the others keep their default.
    pub matched: usize,
    /// Fields of the second schema.
    pub fields: usize,
}

impl Mapping {
    /// What the page says about the mapping; `None` when every field matched.
    pub fn note(&self, name: &str) -> Option<String> {
        if self.matched == 0 {
            Some(format!(
                "No field of `{name}` matches this model's fields by name, so it cannot see this instance: \
                 there is nothing to compare."
            ))
        } else if self.matched < self.fields {
            Some(format!(
                "{} of `{name}`'s {} fields matched this model's by name; the other {} keep their default.",
                self.matched,
                self.fields,
                self.fields - self.matched
            ))
        } else {
            None
        }
    }
}

/// `inst` (of schema `from`) in schema `to`: raw values by field name. Numeric values
/// outside `to`'s range are clamped, and values `to`'s vocabulary lacks become OOV, as
/// they do in the editor.
pub fn map_instance(from: &Schema, inst: &Instance, to: &Schema) -> Mapping {
    let cat = |s: &Schema, n: &str| s.categorical.iter().position(|f| f.name == n);
    let num = |s: &Schema, n: &str| s.numeric.iter().position(|f| f.name == n);
    let mut ex = example_from_instance(from, "", inst);
    // A field that is categorical in one schema and numeric in the other is not the same
    // feature, whatever its name.
    ex.features.retain(|k, _| {
        (cat(from, k).is_some() && cat(to, k).is_some()) || (num(from, k).is_some() && num(to, k).is_some())
    });
    let mut instance = instance_from_example(to, &ex);
    // OOV has no raw value, so the example leaves it out; it stays OOV rather than
    // becoming the other model's default.
    for (i, f) in to.categorical.iter().enumerate() {
        if cat(from, &f.name).is_some_and(|j| inst.cat[j] == 0) {
            instance.cat[i] = 0;
        }
    }
    let matched = to.categorical.iter().filter(|f| cat(from, &f.name).is_some()).count()
        + to.numeric.iter().filter(|f| num(from, &f.name).is_some()).count();
    Mapping { instance, matched, fields: to.num_categorical() + to.num_numeric() }
}

/// The second model's view of the current instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub mapping: Mapping,
    /// `None` when no field matched (a prediction would describe the defaults only).
    pub prediction: Option<Result<Prediction, String>>,
}

pub fn compare(from: &Schema, inst: &Instance, other: &Bundle) -> Comparison {
    let mapping = map_instance(from, inst, &other.schema);
    let prediction = (mapping.matched > 0).then(|| {
        other
            .predict(std::slice::from_ref(&mapping.instance))
            .map_err(|e| e.to_string())
            .and_then(|v| v.into_iter().next().ok_or_else(|| "no prediction".to_string()))
    });
    Comparison { mapping, prediction }
}

/// The second model's curve for the first model's sweep: each point of the plan mapped,
/// all predicted in one batch. `None` when no field matched.
pub fn sweep(from: &Schema, plan: &SweepPlan, other: &Bundle) -> Option<Result<Vec<Prediction>, String>> {
    let mapped: Vec<Mapping> = plan.instances.iter().map(|inst| map_instance(from, inst, &other.schema)).collect();
    if mapped.first()?.matched == 0 {
        return None;
    }
    let instances: Vec<Instance> = mapped.into_iter().map(|m| m.instance).collect();
    Some(other.predict(&instances).map_err(|e| e.to_string()))
}

/// Whether the second schema has the swept feature (else its curve is flat).
pub fn has_feature(from: &Schema, feature: crate::sweep::FeatureRef, to: &Schema) -> bool {
    use crate::sweep::FeatureRef;
    match feature {
        FeatureRef::Cat(i) => from.categorical.get(i).is_some_and(|f| to.categorical.iter().any(|g| g.name == f.name)),
        FeatureRef::Num(i) => from.numeric.get(i).is_some_and(|f| to.numeric.iter().any(|g| g.name == f.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{demo_schema, other_schema};
    use crate::editor::{default_instance, numeric_range, random_instance};
    use crate::sweep::{plan, FeatureRef};

    #[test]
    fn the_same_schema_maps_to_the_same_instance() {
        let s = demo_schema();
        for seed in 0..50 {
            let mut inst = random_instance(&s, seed);
            inst.cat[(seed % 5) as usize] = 0;
            let m = map_instance(&s, &inst, &s);
            assert_eq!(m.instance, inst);
            assert_eq!((m.matched, m.fields), (9, 9));
            assert_eq!(m.note("b"), None);
        }
    }

    #[test]
    fn other_schemas_map_by_name_and_raw_value() {
        let a = demo_schema();
        let mut b = demo_schema();
        // Another vocabulary order, a narrower range, a dropped field and a renamed one.
        let seg = &a.categorical[0];
        let mut vocab = seg.vocab().to_vec();
        vocab.reverse();
        vocab.pop();
        b.categorical[0] = adaftr_core::schema::CategoricalField::new(&seg.name, seg.side, vocab);
        b.numeric[1].max = 100.0;
        b.numeric.remove(3);
        b.categorical[4].name = "placement".into();
        let mut inst = default_instance(&a);
        inst.cat[0] = a.categorical[0].encode("loyal");
        inst.num[1] = 450.0;
        inst.cat[2] = 0;
        let m = map_instance(&a, &inst, &b);
        assert_eq!(b.categorical[0].decode(m.instance.cat[0]), Some("loyal"));
        assert_eq!(m.instance.num[1], numeric_range(&b.numeric[1]).1, "clamped into the other range");
        assert_eq!(m.instance.cat[2], 0, "OOV stays OOV");
        assert_eq!(m.instance.cat[4], default_instance(&b).cat[4], "unmatched: default");
        assert_eq!((m.matched, m.fields), (7, 8));
        assert!(m.note("b.safetensors").unwrap().starts_with("7 of `b.safetensors`'s 8 fields"));
        // A value the other vocabulary lacks ("new" was dropped from it) is OOV there.
        inst.cat[0] = a.categorical[0].encode("new");
        assert_eq!(map_instance(&a, &inst, &b).instance.cat[0], 0);

        let none = map_instance(&a, &inst, &other_schema());
        assert_eq!((none.matched, none.fields), (0, 4));
        assert!(none.note("o").unwrap().contains("nothing to compare"));
    }

    #[test]
    fn a_field_of_another_kind_does_not_match() {
        let a = demo_schema();
        let mut b = other_schema();
        b.numeric[0].name = a.categorical[0].name.clone();
        b.categorical[0].name = a.numeric[0].name.clone();
        let m = map_instance(&a, &random_instance(&a, 2), &b);
        assert_eq!(m.matched, 0);
        assert_eq!(m.instance, default_instance(&b));
    }

    #[test]
    fn comparison_needs_a_matching_field() {
        let bytes = crate::model::tests::bundle_bytes();
        let b = adaftr_core::bundle::load(bytes, &candle_core::Device::Cpu).unwrap();
        let inst = random_instance(&b.schema, 3);
        let c = compare(&b.schema, &inst, &b);
        assert_eq!(c.prediction.unwrap().unwrap(), b.predict(std::slice::from_ref(&inst)).unwrap()[0]);
        let foreign = other_schema();
        let c = compare(&foreign, &default_instance(&foreign), &b);
        assert!(c.prediction.is_none());
        let p = plan(&foreign, &default_instance(&foreign), FeatureRef::Num(0)).unwrap();
        assert!(sweep(&foreign, &p, &b).is_none());
        assert!(!has_feature(&foreign, FeatureRef::Num(0), &b.schema));
        assert!(has_feature(&b.schema, FeatureRef::Cat(1), &b.schema));
    }

    /// The shipped comparison model was trained on the default model's data: every field
    /// matches, and its predictions are its own.
    #[test]
    fn the_shipped_models_compare_field_for_field() {
        let load = |f: &str| {
            let bytes = std::fs::read(format!("{}/assets/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
            adaftr_core::bundle::load(&bytes, &candle_core::Device::Cpu).unwrap()
        };
        let (a, b) = (load("default-model.safetensors"), load("plain-ple.safetensors"));
        assert_eq!(b.config.loss.cl, adaftr_core::config::ClMode::None);
        let inst = random_instance(&a.schema, 5);
        let c = compare(&a.schema, &inst, &b);
        assert_eq!(
            (c.mapping.matched, c.mapping.fields),
            (c.mapping.fields, a.schema.num_categorical() + a.schema.num_numeric())
        );
        assert_eq!(c.mapping.instance, inst);
        let pb = c.prediction.unwrap().unwrap();
        assert_eq!(pb, b.predict(std::slice::from_ref(&inst)).unwrap()[0]);
        assert!(pb.tau.is_none(), "no relatedness term, no tau");
        assert_ne!(pb.pctr, a.predict(std::slice::from_ref(&inst)).unwrap()[0].pctr);
    }
}
