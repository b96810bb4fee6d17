//! FundWatch knowledge base (知识库): the national knowledge points that the rules
//! check settlement lines against, as immutable, versioned, indexed data.
//!
//! The entry points are [`import_national`] (all national batches, updates and
//! ICD lists from `../shared/data`) and [`import_files`] (a new version from an
//! existing one plus new batch files); [`KbStore`] keeps versions on disk
//! (`<root>/<version_id>/manifest.json` + Parquet, see `docs/knowledge-base.md`);
//! [`national`] loads the full national version embedded in the binary. A
//! [`KnowledgeBase`] answers the engine's per-line questions without allocating:
//! [`KnowledgeBase::lookup`] (exact code, then the 12-char drug prefix, in force
//! on a Date32 day), [`KnowledgeBase::lookup_pair`] for 重复收费 pairs, and
//! [`KnowledgeBase::icd10`].
//!
//! ```no_run
//! # fn main() -> Result<(), fundwatch_kb::KbError> {
//! let kb = fundwatch_kb::national()?;
//! let sex = kb.class_id("药品区分性别使用").expect("class present");
//! let day = fundwatch_kb::date_to_days(chrono::NaiveDate::from_ymd_opt(2026, 3, 1).expect("date"));
//! if let Some(row) = kb.lookup(sex, "XL02BBA326A001010102180", day) {
//!     println!("{} limited to {:?}", kb.point(row).item_name, kb.point(row).limit_value);
//! }
//! # Ok(()) }
//! ```
//!
//! Restriction texts of 限适应症, 限二线 and 限儿童使用 are read into a
//! [`Condition`] (ICD-10 prefixes, ages, sex, settings, evidence) with the curated
//! table `data/indication_keywords.csv`; see [`condition`].

pub mod condition;
mod diff;
mod error;
mod format;
mod import;
mod index;
pub mod model;
mod national;
mod store;

/// The date type of the public API (re-exported so callers need no chrono dependency).
pub use chrono::NaiveDate;
pub use condition::{KeywordTable, parse_condition};
pub use diff::{KbDiff, PointChange, changed_fields, diff};
pub use error::KbError;
pub use format::{FORMAT, date_to_days, days_to_date};
pub use import::{
    ClassCount, ImportOptions, Progress, SourceSummary, import_files, import_national,
    national_files,
};
pub use index::{ClassId, DRUG_PREFIX_LEN, KnowledgeBase};
pub use model::{Condition, IcdCode, KnowledgePoint};
pub use national::{NATIONAL, national};
pub use store::{ClassSummary, Counts, KbStore, Manifest, ROOT_ENV, default_root};

/// Parses a `YYYY-MM-DD` date (for options such as `--effective-from`).
pub fn parse_date(value: &str) -> Result<chrono::NaiveDate, KbError> {
    chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").map_err(|_| KbError::Date {
        field: "--effective-from".into(),
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests;
