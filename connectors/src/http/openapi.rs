//! The OpenAPI 3.0 description of the service: hand-written at
//! `docs/openapi.json` (reviewed like code) and served from it unchanged at
//! `GET /openapi.json`.

/// `docs/openapi.json`, compiled in.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");
