//! Errors of the rule-pack format.

use std::path::PathBuf;

/// What went wrong reading or checking a rule pack; each variant says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A TOML file is malformed or has a field of the wrong type.
    #[error("{path}: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// The pack is well-formed but inconsistent.
    #[error("{path}: {message}")]
    Invalid {
        /// The file where the problem is.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
}
