//! The full national KB version shipped inside the binary, so the demo and tests
//! need no import step. The files under `knowledge-base/national/` are a saved
//! version (manifest + Parquet); a test re-imports `../shared/data` and checks
//! the content hash so the two cannot drift.

use std::path::Path;

use bytes::Bytes;

use crate::error::KbError;
use crate::index::KnowledgeBase;
use crate::store::load_version;

/// The alias under which the embedded version is listed and loaded.
pub const NATIONAL: &str = "national";

static MANIFEST: &[u8] = include_bytes!("../national/manifest.json");
static POINTS: &[u8] = include_bytes!("../national/knowledge_points.parquet");
static ICD10: &[u8] = include_bytes!("../national/icd10.parquet");
static ICD9: &[u8] = include_bytes!("../national/icd9.parquet");

/// Loads the embedded national version (batches 1–17, the 2026-01 update,
/// ICD-10 医保版 2.0, ICD-9-CM-3). Parses and indexes on every call; keep the
/// result.
pub fn national() -> Result<KnowledgeBase, KbError> {
    if MANIFEST.is_empty() {
        return Err(KbError::format(
            "knowledge-base/national",
            "the embedded national version is missing; regenerate it with `FUNDWATCH_BLESS=1 cargo test -p fundwatch-kb national_matches_a_fresh_import`",
        ));
    }
    load_version(
        Path::new("knowledge-base/national"),
        MANIFEST,
        Bytes::from_static(POINTS),
        Bytes::from_static(ICD10),
        Bytes::from_static(ICD9),
    )
}
