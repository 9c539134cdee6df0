//! A batch of rows that are one instance with a few features set: the sensitivity panel's
//! rows each move one feature, the relatedness map's two.
//!
//! Such a batch is kept, and sent to the panel worker, as the instance and each row's
//! changes: for the default model's two panels about 3,900 numbers, where their 869 rows
//! would be about 69,000 (the instance's 79 values, 869 times). Building, copying and
//! posting those rows took the page's thread 1.1 ms of every edit (a profile of 40 slider
//! edits), 0.5 ms as changes, most of it the two `postMessage` calls themselves. The rows
//! are built only where they are predicted, by [`Variations::instances`], the same code on
//! the page and in the worker.

use adaftr_core::inference::Instance;
use adaftr_core::schema::Schema;

use crate::sweep::FeatureRef;

/// Rows that are `base` with some features set.
#[derive(Debug, Clone, PartialEq)]
pub struct Variations {
    base: Instance,
    /// How many of `changes` each row takes, in row order.
    counts: Vec<u8>,
    /// Each row's changes, one row after another: a feature and its value (a raw numeric,
    /// or a categorical id as `f32`, as [`FeatureRef::set`] takes it).
    changes: Vec<(FeatureRef, f32)>,
}

/// [`Variations`] as the worker receives them: plain arrays, each a typed array on the wire.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Encoded {
    pub cat: Vec<u32>,
    pub num: Vec<f32>,
    pub counts: Vec<u8>,
    /// [`FeatureRef::code`]s.
    pub features: Vec<u32>,
    pub values: Vec<f32>,
}

impl Variations {
    /// No rows yet.
    pub fn new(base: Instance) -> Self {
        Self { base, counts: Vec::new(), changes: Vec::new() }
    }

    /// Adds a row: the instance with `changes` applied in order (none: the instance itself).
    pub fn push(&mut self, changes: &[(FeatureRef, f32)]) {
        // A row sets one or two features; a longer list is a bug in the caller.
        let n = u8::try_from(changes.len()).expect("at most 255 changes a row");
        self.counts.push(n);
        self.changes.extend_from_slice(changes);
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The rows, built.
    pub fn instances(&self) -> Vec<Instance> {
        let mut at = 0;
        self.counts
            .iter()
            .map(|&n| {
                let mut row = self.base.clone();
                for &(f, v) in &self.changes[at..at + n as usize] {
                    f.set(&mut row, v);
                }
                at += n as usize;
                row
            })
            .collect()
    }

    pub fn encode(&self) -> Encoded {
        Encoded {
            cat: self.base.cat.clone(),
            num: self.base.num.clone(),
            counts: self.counts.clone(),
            features: self.changes.iter().map(|(f, _)| f.code()).collect(),
            values: self.changes.iter().map(|&(_, v)| v).collect(),
        }
    }

    /// The rows [`encode`](Self::encode) sent, checked against the model's schema, so that
    /// building them cannot index past the instance.
    pub fn decode(e: Encoded, schema: &Schema) -> Result<Self, String> {
        let (n_cat, n_num) = (schema.num_categorical(), schema.num_numeric());
        if (e.cat.len(), e.num.len()) != (n_cat, n_num) {
            return Err(format!(
                "the batch's instance has {} categorical and {} numeric values; the model has {n_cat} and {n_num}",
                e.cat.len(),
                e.num.len()
            ));
        }
        let named: usize = e.counts.iter().map(|&n| n as usize).sum();
        if e.features.len() != named || e.values.len() != named {
            return Err(format!(
                "the batch's {} rows make {named} changes, but came with {} features and {} values",
                e.counts.len(),
                e.features.len(),
                e.values.len()
            ));
        }
        let changes = e
            .features
            .iter()
            .zip(&e.values)
            .enumerate()
            .map(|(k, (&code, &v))| match FeatureRef::from_code(code).filter(|f| f.exists(schema)) {
                Some(f) => Ok((f, v)),
                None => Err(format!("change {k} of the batch names feature code {code}, which the model lacks")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { base: Instance { cat: e.cat, num: e.num }, counts: e.counts, changes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::demo_schema;
    use crate::editor::random_instance;

    fn sample(s: &Schema) -> Variations {
        let mut v = Variations::new(random_instance(s, 5));
        v.push(&[]);
        v.push(&[(FeatureRef::Num(1), 0.25)]);
        v.push(&[(FeatureRef::Cat(2), 3.0), (FeatureRef::Num(0), -1.5)]);
        v
    }

    #[test]
    fn rows_are_the_instance_with_their_changes() {
        let s = demo_schema();
        let v = sample(&s);
        let base = random_instance(&s, 5);
        let rows = v.instances();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], base);
        let mut one = base.clone();
        one.num[1] = 0.25;
        assert_eq!(rows[1], one);
        let mut two = base.clone();
        (two.cat[2], two.num[0]) = (3, -1.5);
        assert_eq!(rows[2], two);
    }

    #[test]
    fn the_wire_form_decodes_to_the_same_rows() {
        let s = demo_schema();
        let v = sample(&s);
        let e = v.encode();
        assert_eq!(e.features.len(), 3, "the changes travel, not the rows");
        assert_eq!(Variations::decode(e, &s).unwrap(), v);
    }

    #[test]
    fn a_batch_that_does_not_fit_the_model_is_refused() {
        let s = demo_schema();
        let e = sample(&s).encode();
        let mut short = e.clone();
        short.num.pop();
        let why = Variations::decode(short, &s).unwrap_err();
        assert!(why.contains("numeric values; the model has"), "{why}");
        let mut lost = e.clone();
        lost.values.pop();
        assert!(Variations::decode(lost, &s).unwrap_err().contains("3 changes, but came with 3 features and 2 values"));
        let mut foreign = e.clone();
        foreign.features[0] = FeatureRef::Num(s.num_numeric()).code();
        let why = Variations::decode(foreign, &s).unwrap_err();
        assert!(why.contains("change 0") && why.contains("lacks"), "{why}");
    }
}
