//! The national response envelope (DOMAIN §2.1): `inf_refmsgid` is 接收方医保区划
//! (6 digits), then the time (14, yyyyMMddHHmmss), then a serial (10);
//! `refmsg_time` and `respond_time` are yyyyMMddHHmmssSSS.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Local;
use serde::Serialize;

/// Serials wrap at 10 digits.
const SERIAL_MODULUS: u64 = 10_000_000_000;

/// Issues message ids.
#[derive(Debug)]
pub(crate) struct MsgIds {
    admdvs: String,
    serial: AtomicU64,
}

/// The ids of one answer, taken when the request arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub inf_refmsgid: String,
    pub refmsg_time: String,
}

impl MsgIds {
    /// Ids for `admdvs` (6 digits, validated by the config).
    pub fn new(admdvs: &str) -> Self {
        Self {
            admdvs: admdvs.to_string(),
            serial: AtomicU64::new(1),
        }
    }

    /// Ids for a request arriving now.
    pub fn stamp(&self) -> Stamp {
        let now = Local::now();
        let serial = self.serial.fetch_add(1, Ordering::Relaxed) % SERIAL_MODULUS;
        Stamp {
            inf_refmsgid: format!("{}{}{serial:010}", self.admdvs, now.format("%Y%m%d%H%M%S")),
            refmsg_time: now.format("%Y%m%d%H%M%S%3f").to_string(),
        }
    }
}

/// `respond_time`: now.
pub(crate) fn respond_time() -> String {
    Local::now().format("%Y%m%d%H%M%S%3f").to_string()
}

/// A successful `/fsi/*` answer; field order as the national interface.
#[derive(Debug, Serialize)]
pub(crate) struct FsiResponse<T> {
    pub infcode: i32,
    pub err_msg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warn_msg: Option<String>,
    pub inf_refmsgid: String,
    pub refmsg_time: String,
    pub respond_time: String,
    pub output: T,
}

impl<T> FsiResponse<T> {
    /// `infcode 0` with `output`.
    pub fn ok(stamp: Stamp, output: T) -> Self {
        Self {
            infcode: 0,
            err_msg: String::new(),
            warn_msg: None,
            inf_refmsgid: stamp.inf_refmsgid,
            refmsg_time: stamp.refmsg_time,
            respond_time: respond_time(),
            output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_national_shape() {
        let ids = MsgIds::new("430796");
        let a = ids.stamp();
        let b = ids.stamp();
        assert_eq!(a.inf_refmsgid.len(), 30);
        assert!(a.inf_refmsgid.starts_with("430796"));
        assert!(a.inf_refmsgid.bytes().all(|c| c.is_ascii_digit()));
        assert!(a.inf_refmsgid.ends_with("0000000001"));
        assert!(b.inf_refmsgid.ends_with("0000000002"));
        assert_eq!(a.refmsg_time.len(), 17);
        assert_eq!(respond_time().len(), 17);
    }
}
