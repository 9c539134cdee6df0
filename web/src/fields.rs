//! The editor's list of fields: what each is called, which group of its side it is shown
//! in, and the search that narrows the list.
//!
//! A field shows its schema label where it has one and its column name otherwise; the
//! column name stays visible beside a label. Within a side (`model::SIDES`), fields are
//! grouped by their schema group, groups in order of first appearance (categorical fields
//! before numeric ones, as in the schema); fields without a group form an untitled group.

use std::rc::Rc;

use adaftr_core::schema::{FieldInfo, Schema, Side};

use crate::model::SIDES;

/// Which input of the editor: categorical or numeric field `i` of the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldRef {
    Cat(usize),
    Num(usize),
}

/// One field as the editor shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub field: FieldRef,
    /// The column name (the `data-field` attribute, and what examples are keyed by).
    pub name: String,
    /// The label, or the column name where there is none.
    pub display: String,
    pub description: Option<String>,
    /// The text a search looks in: name, label and description, lowercased once.
    haystack: String,
}

impl Field {
    fn new(field: FieldRef, name: &str, info: &FieldInfo) -> Self {
        let display = info.label.clone().unwrap_or_else(|| name.to_string());
        let haystack = [Some(name), info.label.as_deref(), info.description.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n")
            .to_lowercase();
        Self { field, name: name.to_string(), display, description: info.description.clone(), haystack }
    }

    /// Whether the column name differs from what is displayed (so it is shown beside it).
    pub fn has_label(&self) -> bool {
        self.display != self.name
    }

    /// Case-insensitive: the query, trimmed, occurs in the name, label or description. An
    /// empty query matches every field.
    pub fn matches(&self, query: &Query) -> bool {
        self.haystack.contains(&query.0)
    }
}

/// A search query, trimmed and lowercased once per keystroke.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Query(String);

impl Query {
    pub fn new(text: &str) -> Self {
        Self(text.trim().to_lowercase())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The fields of one group of a side.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub title: Option<String>,
    /// Shared, so that filtering and rendering copy a pointer rather than four strings, and
    /// an editor input's props compare by address.
    pub fields: Vec<Rc<Field>>,
}

/// One side's fields, by group.
#[derive(Clone, Debug, PartialEq)]
pub struct SideFields {
    pub side: Side,
    pub title: &'static str,
    pub groups: Vec<Group>,
}

/// Every field of the schema, by side (in `SIDES` order, empty sides left out) and group.
pub fn layout(schema: &Schema) -> Vec<SideFields> {
    let all =
        schema
            .categorical
            .iter()
            .enumerate()
            .map(|(i, f)| (f.side, f.info.group.as_deref(), Rc::new(Field::new(FieldRef::Cat(i), &f.name, &f.info))))
            .chain(schema.numeric.iter().enumerate().map(|(i, f)| {
                (f.side, f.info.group.as_deref(), Rc::new(Field::new(FieldRef::Num(i), &f.name, &f.info)))
            }))
            .collect::<Vec<_>>();
    SIDES
        .iter()
        .filter_map(|&(side, title)| {
            let mut groups: Vec<Group> = Vec::new();
            for (_, group, field) in all.iter().filter(|(s, _, _)| *s == side) {
                let title = group.map(str::to_string);
                match groups.iter_mut().find(|g| g.title == title) {
                    Some(g) => g.fields.push(field.clone()),
                    None => groups.push(Group { title, fields: vec![field.clone()] }),
                }
            }
            (!groups.is_empty()).then_some(SideFields { side, title, groups })
        })
        .collect()
}

/// The layout with only the fields that match `query`; groups and sides left empty are
/// dropped. Also the number of fields kept.
pub fn filter(layout: &[SideFields], query: &Query) -> (Vec<SideFields>, usize) {
    let mut shown = 0;
    let sides = layout
        .iter()
        .filter_map(|s| {
            let groups: Vec<Group> = s
                .groups
                .iter()
                .filter_map(|g| {
                    let fields: Vec<Rc<Field>> = g.fields.iter().filter(|f| f.matches(query)).cloned().collect();
                    shown += fields.len();
                    (!fields.is_empty()).then(|| Group { title: g.title.clone(), fields })
                })
                .collect();
            (!groups.is_empty()).then_some(SideFields { side: s.side, title: s.title, groups })
        })
        .collect();
    (sides, shown)
}

/// The line under the search box: how many fields are shown, or that none matches.
pub fn count_text(shown: usize, total: usize, query: &str) -> String {
    let noun = |n: usize| if n == 1 { "field" } else { "fields" };
    match (shown, query.trim()) {
        (_, "") => format!("{total} {}", noun(total)),
        (0, q) => format!("No field matches “{q}”; clear the search to see all {total}."),
        (n, _) => format!("Showing {n} of {total} {}", noun(total)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::demo_schema;

    fn names(sides: &[SideFields]) -> Vec<&str> {
        sides.iter().flat_map(|s| &s.groups).flat_map(|g| &g.fields).map(|f| f.name.as_str()).collect()
    }

    fn described() -> Schema {
        let mut s = demo_schema();
        let info = |label: &str, description: &str, group: &str| FieldInfo {
            label: Some(label.into()),
            description: Some(description.into()),
            group: Some(group.into()),
        };
        s.categorical[0].info = info("Segment", "How long the user has been a customer.", "Profile");
        s.numeric[0].info = info("Click rate (30 days)", "The user's clicks per view.", "Activity");
        s.categorical[1].info = info("Intent", "What the query asks for.", "Profile");
        s
    }

    #[test]
    fn a_schema_without_descriptions_shows_column_names_by_side() {
        let s = demo_schema();
        let layout = layout(&s);
        assert_eq!(layout.iter().map(|l| l.side).collect::<Vec<_>>(), [Side::User, Side::Item, Side::Context]);
        assert!(layout.iter().all(|l| l.groups.len() == 1 && l.groups[0].title.is_none()));
        let fields: Vec<&Rc<Field>> = layout.iter().flat_map(|s| &s.groups).flat_map(|g| &g.fields).collect();
        assert_eq!(fields.len(), s.num_categorical() + s.num_numeric());
        assert!(fields.iter().all(|f| f.display == f.name && !f.has_label() && f.description.is_none()));
        // Within a side, categorical fields come first, in schema order.
        assert_eq!(names(&layout[..1]), ["user_segment", "query_intent", "user_ctr_30d"]);
        assert_eq!(layout[0].groups[0].fields[2].field, FieldRef::Num(0));
        let (found, n) = filter(&layout, &Query::new("  USER_"));
        assert_eq!((names(&found), n), (vec!["user_segment", "user_ctr_30d"], 2));
    }

    #[test]
    fn labels_and_groups_are_shown_and_searched() {
        let layout = layout(&described());
        let user = &layout[0];
        let titles: Vec<Option<&str>> = user.groups.iter().map(|g| g.title.as_deref()).collect();
        assert_eq!(titles, [Some("Profile"), Some("Activity")]);
        assert_eq!(names(&layout[..1]), ["user_segment", "query_intent", "user_ctr_30d"]);
        let seg = &user.groups[0].fields[0];
        assert_eq!((seg.display.as_str(), seg.has_label()), ("Segment", true));

        // By label, by description, by column name; any case.
        for (q, want) in [
            ("segment", vec!["user_segment"]),
            ("CUSTOMER", vec!["user_segment"]),
            ("ctr_30", vec!["user_ctr_30d"]),
            ("click rate", vec!["user_ctr_30d"]),
            ("item_", vec!["item_category", "item_price", "item_rating"]),
        ] {
            let (found, n) = filter(&layout, &Query::new(q));
            assert_eq!((names(&found), n), (want.clone(), want.len()), "query {q}");
        }
        // Empty groups and sides go; an empty query keeps everything.
        let (found, _) = filter(&layout, &Query::new("intent"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].groups.len(), 1);
        assert_eq!(filter(&layout, &Query::new(" ")).0, layout);
        assert_eq!(filter(&layout, &Query::new("no such thing")), (vec![], 0));
    }

    #[test]
    fn the_shipped_model_names_and_groups_every_field() {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/default-model.safetensors")).unwrap();
        let (_, schema, _) = adaftr_core::bundle::read_metadata(&bytes).unwrap();
        let layout = layout(&schema);
        let fields: Vec<&Rc<Field>> = layout.iter().flat_map(|s| &s.groups).flat_map(|g| &g.fields).collect();
        assert_eq!(fields.len(), schema.num_categorical() + schema.num_numeric());
        assert!(fields.iter().all(|f| f.has_label() && f.description.is_some()));
        assert!(layout.iter().flat_map(|s| &s.groups).all(|g| g.title.is_some()));
        let (found, n) = filter(&layout, &Query::new("user segment"));
        assert_eq!((names(&found), n), (vec!["categorical_3"], 1));
    }

    #[test]
    fn the_count_says_what_is_shown() {
        assert_eq!(count_text(9, 9, ""), "9 fields");
        assert_eq!(count_text(1, 9, "seg"), "Showing 1 of 9 fields");
        assert_eq!(count_text(0, 9, " zz "), "No field matches “zz”; clear the search to see all 9.");
        assert_eq!(count_text(1, 1, ""), "1 field");
    }
}
