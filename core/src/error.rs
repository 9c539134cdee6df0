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
}

pub type Result<T> = std::result::Result<T, Error>;
