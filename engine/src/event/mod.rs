//! The event model (the national 3101/3102 `data` object) and its decoder.
//!
//! Decoding is lenient on types and strict on meaning (SPEC §2): numbers sent as
//! strings and strings sent as numbers are accepted, null or empty dates are
//! accepted, unknown fields are ignored and codes are trimmed; a value that cannot
//! mean what its field means is an error naming the field path and the value.

mod decode;
mod fast;
mod model;

pub use decode::{
    DecodeError, data_path, decode_event, decode_reference, decode_request, decode_value,
};
pub use fast::DataPath;
pub use model::{Diagnosis, Encounter, Envelope, Event, Operation, Order, Patient};
