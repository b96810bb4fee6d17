//! Errors of the knowledge base. Every variant names what to fix: the file, and
//! where it applies the sheet, row, column and the offending value.

use std::path::PathBuf;

/// Everything that can go wrong while importing, storing or loading a KB version.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// A file or directory could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// A workbook could not be opened at all (not an xlsx/xls file, or damaged).
    #[error("cannot open workbook {path}: {message}; is it the official NHSA attachment?")]
    Workbook {
        /// The workbook.
        path: PathBuf,
        /// What calamine reported.
        message: String,
    },

    /// A sheet the layout needs is missing.
    #[error(
        "{path}: sheet {sheet} is missing (the workbook has {found:?}); drug lists need sheet 1 (one row per generic) and sheet 2 (one row per national code)"
    )]
    MissingSheet {
        /// The workbook.
        path: PathBuf,
        /// 1-based sheet number that is missing.
        sheet: usize,
        /// Sheet names present.
        found: Vec<String>,
    },

    /// The header row matches none of the known national layouts.
    #[error(
        "{path} sheet {sheet:?}: header {found:?} matches no known national layout; expected one of: {expected}"
    )]
    UnknownLayout {
        /// The workbook.
        path: PathBuf,
        /// Sheet name.
        sheet: String,
        /// The header cells found in row 1.
        found: Vec<String>,
        /// Description of the accepted layouts.
        expected: String,
    },

    /// One cell holds a value the importer cannot use.
    #[error("{path} sheet {sheet:?} row {row} column {column:?}: {problem} (value {value:?})")]
    Cell {
        /// The workbook.
        path: PathBuf,
        /// Sheet name.
        sheet: String,
        /// 1-based spreadsheet row (row 1 is the header).
        row: u32,
        /// Column header.
        column: String,
        /// The cell as text.
        value: String,
        /// What is wrong and what is expected.
        problem: String,
    },

    /// A JSON file is not valid JSON or does not have the batch shape.
    #[error("{path}: {message}")]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// serde_json's message, with line and column.
        message: String,
    },

    /// One JSON record cannot be used.
    #[error("{path} record {index} (kp_id {kp_id:?}): {problem}")]
    Record {
        /// The JSON file.
        path: PathBuf,
        /// 0-based index of the record in the file.
        index: usize,
        /// The record's kp_id.
        kp_id: String,
        /// What is wrong and what is expected.
        problem: String,
    },

    /// One line of a text table (ICD list, keyword CSV) cannot be used.
    #[error("{path} line {line}: {problem} (line {text:?})")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The line's text.
        text: String,
        /// What is wrong and what is expected.
        problem: String,
    },

    /// The importer cannot tell what a file is.
    #[error("cannot import {path}: {reason}")]
    UnknownSource {
        /// The file.
        path: PathBuf,
        /// Why, and what is accepted instead.
        reason: String,
    },

    /// A batch has no publication date and none was given.
    #[error(
        "{path}: no publication date for {batch}; pass --effective-from YYYY-MM-DD (ImportOptions::effective_from)"
    )]
    MissingDate {
        /// The file.
        path: PathBuf,
        /// The batch tag.
        batch: String,
    },

    /// A date could not be parsed.
    #[error("invalid date {value:?} for {field}: expected YYYY-MM-DD")]
    Date {
        /// Which field or option.
        field: String,
        /// The offending text.
        value: String,
    },

    /// Two imported points have the same kp_id.
    #[error(
        "kp_id {kp_id} comes from both {first} and {second}; a KB version holds each knowledge point once — import one of the two files, or re-import the file that should replace the other"
    )]
    DuplicateKpId {
        /// The duplicated id.
        kp_id: String,
        /// Source of the first point.
        first: String,
        /// Source of the second point.
        second: String,
    },

    /// A Parquet or Arrow file of a stored version cannot be written or read.
    #[error("{path}: {problem}")]
    Format {
        /// The file (or `national` for the embedded version).
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },

    /// A stored version's files do not agree with its manifest.
    #[error(
        "KB version {id} at {path} is damaged: {problem}; restore it from a backup or re-import it"
    )]
    Corrupt {
        /// Version id.
        id: String,
        /// Version directory.
        path: PathBuf,
        /// What does not match.
        problem: String,
    },

    /// A version id already exists with different content.
    #[error(
        "KB version {id} already exists at {path} with content hash {existing}, but the new content hashes to {new}; versions are immutable — import under another date (--effective-from) or remove the directory if it was a mistake"
    )]
    VersionConflict {
        /// Version id.
        id: String,
        /// Existing version directory.
        path: PathBuf,
        /// Hash stored in the existing manifest.
        existing: String,
        /// Hash of the content being saved.
        new: String,
    },

    /// A version was asked for that the store does not hold.
    #[error("KB version {id:?} not found under {root}; available: {available}")]
    VersionNotFound {
        /// Requested id.
        id: String,
        /// Store root.
        root: PathBuf,
        /// Comma-separated ids that exist.
        available: String,
    },
}

impl KbError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        KbError::Io {
            path: path.into(),
            source,
        }
    }

    /// A Parquet/Arrow problem for `path`.
    pub(crate) fn format(path: impl Into<PathBuf>, problem: impl std::fmt::Display) -> Self {
        KbError::Format {
            path: path.into(),
            problem: problem.to_string(),
        }
    }
}
