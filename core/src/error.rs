//! The crate's error type. Every failure a user can cause (bad CSV, bad bundle, bad config)
//! is a typed variant that says what is wrong and where; nothing in the crate panics on input.

/// Where in a CSV input a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (or stream label) being read.
    pub file: String,
    /// 1-based line number, the header being line 1.
    pub line: u64,
    /// The column's header name, when the problem concerns one column.
    pub column: Option<String>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if let Some(c) = &self.column {
            write!(f, ", column `{c}`")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error("I/O error on {file}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },

    /// A malformed data row or header.
    #[error("{location}: {reason}{}", value.as_ref().map(|v| format!(" (value `{v}`)")).unwrap_or_default())]
    Data { location: Location, value: Option<String>, reason: String },

    /// A data file that cannot be used at all (empty, unknown layout, missing labels).
    #[error("{file}: {reason}")]
    Input { file: String, reason: String },

    /// An invalid model or training configuration.
    #[error("invalid config: {0}")]
    Config(String),

    /// The bundle's bytes are not a safetensors file we can read.
    #[error("not a valid model bundle: {0}")]
    BundleFormat(String),

    #[error(
        "model bundle has format version {found}; this build reads version {supported} (upgrade adaftr to load it)"
    )]
    BundleVersion { found: u32, supported: u32 },

    #[error("model bundle metadata `{key}` is missing or invalid: {reason}")]
    BundleMetadata { key: String, reason: String },

    #[error("model bundle is missing tensor `{0}`")]
    MissingTensor(String),

    #[error("model bundle tensor `{name}` has shape {found:?}, the config needs {expected:?}")]
    ShapeMismatch { name: String, expected: Vec<usize>, found: Vec<usize> },

    #[error("model bundle tensor `{name}` has dtype {found}, expected f32")]
    DType { name: String, found: String },

    #[error("model bundle has unexpected tensor `{0}` (does the config match the weights?)")]
    UnexpectedTensor(String),

    #[error("non-finite {what}: {value}")]
    NonFinite { what: String, value: f64 },

    /// Data-parallel training: the group could not communicate, or its replicas disagree.
    #[error("data-parallel training: {0}")]
    Parallel(String),

    /// A schema (in a bundle or checkpoint, or fitted, or about to be saved) that would
    /// encode inputs differently from training, or not at all. `field` is the column name
    /// at fault, or the schema entry (`format`, `categorical`, `numeric`) for a problem of
    /// the whole list.
    #[error("schema field `{field}`: {problem}")]
    Schema { field: String, problem: SchemaProblem },
}

/// What is wrong with one schema field; see [`Error::Schema`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaProblem {
    #[error("unknown format `{0}` (expected aliexpress, aliccp or explicit)")]
    UnknownFormat(String),

    #[error("the {role} column has an empty name")]
    EmptyName { role: &'static str },

    /// Header names are trimmed and cannot hold line breaks, so such a name never matches.
    #[error(
        "the {role} column's name has surrounding whitespace or a control character, so no CSV header can match it"
    )]
    OddName { role: &'static str },

    #[error("the column is listed twice, as {first} and as {second}")]
    DuplicateName { first: &'static str, second: &'static str },

    #[error("the group column cannot also be the {role} column")]
    GroupRole { role: &'static str },

    #[error("the vocabulary lists `{value}` twice (ids {first} and {second})")]
    DuplicateValue { value: String, first: u32, second: u32 },

    /// The empty value is the missing value: it always encodes to the OOV id 0.
    #[error("vocabulary id {id} is the empty value, which is reserved for missing values")]
    EmptyValue { id: u32 },

    #[error("the vocabulary has {0} values, more than a u32 id can number")]
    VocabularyTooLarge(usize),

    #[error("normalisation scale {0} is not a finite positive number")]
    Scale(f32),

    #[error("normalisation shift {0} is not finite")]
    Shift(f32),

    #[error("normalisation `{norm}` has no parameters, but the schema gives shift {shift} and scale {scale} (expected 0 and 1)")]
    UnusedParameters { norm: &'static str, shift: f32, scale: f32 },

    #[error("training range [{min}, {max}] is not an ordered pair of finite numbers")]
    Range { min: f32, max: f32 },

    #[error("the training range's end {value} does not normalise to a finite number")]
    RangeOverflows { value: f32 },

    /// A field's label, description or group is shown in the page as it is.
    #[error("its display {part} has {chars} characters, more than the {max} allowed")]
    InfoTooLong { part: &'static str, chars: usize, max: usize },

    #[error("its display {part} is blank or holds a control character (a line break, say); give one line of text or leave it out")]
    InfoNotText { part: &'static str },

    #[error("the vocabularies need {expected} embedding rows (each field's values plus its OOV row), but tensor `{tensor}` has {found}")]
    EmbeddingRows { tensor: String, expected: usize, found: usize },

    #[error("the schema has {expected} numeric fields, but tensor `{tensor}` takes {found}")]
    NumericWidth { tensor: String, expected: usize, found: usize },
}

pub type Result<T> = std::result::Result<T, Error>;
