//! Logging set-up shared by every command: `tracing` to stderr, one JSON object
//! per line in production (`--log-format json`, the default of `serve` and
//! `stream`), human-readable text otherwise; `RUST_LOG` filters.
//!
//! Personal data never reaches a log line in clear (SPEC §8): whatever the call
//! site, a field whose name is a personal one ([`SENSITIVE_FIELDS`]: `patn_name`,
//! `patn_id`, `mdtrt_id`, `certno`, …) is masked by the formatter itself, in
//! events and in span fields. Messages are plain text and are not inspected, so
//! call sites put ids in fields, never in the message.

use std::fmt;

use clap::ValueEnum;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable.
    Text,
}

/// Field names whose values are personal data or identify a person, an
/// encounter or an order: masked in every log line.
pub const SENSITIVE_FIELDS: &[&str] = &[
    "patn_name",
    "psn_name",
    "patn_id",
    "psn_no",
    "certno",
    "cert_no",
    "brdy",
    "mdtrt_id",
    "curr_mdtrt_id",
    "rx_id",
    "rxno",
    "jr_id",
    "jrd_id",
    "warn_rslt_id",
    "drord_dr_codg",
    "drord_dr_name",
    "tel",
    "addr",
];

/// Whether `field`'s value must be masked.
pub fn is_sensitive(field: &str) -> bool {
    SENSITIVE_FIELDS.contains(&field)
}

/// Masks one value: names keep their first character (张三 → 张*), ids their
/// last characters only when long enough not to identify on their own
/// (`P00012345678` → `********5678`); short values become `***`.
pub fn mask(field: &str, value: &str) -> String {
    let chars: Vec<char> = value.trim().chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    if field.ends_with("_name") {
        let mut out = String::new();
        out.push(chars[0]);
        out.extend(std::iter::repeat_n(
            '*',
            chars.len().saturating_sub(1).max(1),
        ));
        return out;
    }
    let keep = match chars.len() {
        n if n >= 10 => 4,
        n if n >= 6 => 2,
        _ => 0,
    };
    if keep == 0 {
        return "***".to_string();
    }
    let mut out: String = std::iter::repeat_n('*', chars.len() - keep).collect();
    out.extend(&chars[chars.len() - keep..]);
    out
}

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is
/// unset. A second call (another command in the same process) keeps the first.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .fmt_fields(MaskedJsonFields)
            .event_format(MaskedJson)
            .try_init(),
        LogFormat::Text => builder.fmt_fields(MaskedTextFields).try_init(),
    };
}

/// Collects fields into a JSON map, masking the sensitive ones.
#[derive(Default)]
struct MaskVisitor(Map<String, Value>);

impl MaskVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        let value = if is_sensitive(name) {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            Value::String(mask(name, &text))
        } else {
            value
        };
        self.0.insert(name.to_string(), value);
    }
}

impl Visit for MaskVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

/// Span fields as a JSON object (masked), for [`MaskedJson`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MaskedJsonFields;

impl<'writer> FormatFields<'writer> for MaskedJsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = MaskVisitor::default();
        fields.record(&mut visitor);
        write!(writer, "{}", Value::Object(visitor.0))
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let map = serde_json::from_str::<Map<String, Value>>(&current.fields).unwrap_or_default();
        let mut visitor = MaskVisitor(map);
        fields.record(&mut visitor);
        current.fields = Value::Object(visitor.0).to_string();
        Ok(())
    }
}

/// One JSON object per event: `timestamp`, `level`, `target`, the event's
/// fields (`message` among them), and `spans` from the root to the innermost,
/// each `{"name": …, <fields>}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MaskedJson;

impl<S> FormatEvent<S, MaskedJsonFields> for MaskedJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, MaskedJsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".into(), Value::String(timestamp));
        let meta = event.metadata();
        line.insert("level".into(), Value::String(meta.level().to_string()));
        line.insert("target".into(), Value::String(meta.target().to_string()));
        let mut visitor = MaskVisitor::default();
        event.record(&mut visitor);
        line.insert("fields".into(), Value::Object(visitor.0));
        if let Some(scope) = ctx.event_scope() {
            let mut spans = Vec::new();
            for span in scope.from_root() {
                let mut entry = Map::new();
                entry.insert("name".into(), Value::String(span.name().to_string()));
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<MaskedJsonFields>>()
                    && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&fields.fields)
                {
                    entry.extend(map);
                }
                spans.push(Value::Object(entry));
            }
            line.insert("spans".into(), Value::Array(spans));
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// `key=value` fields (masked), for the human-readable format.
#[derive(Debug, Clone, Copy, Default)]
pub struct MaskedTextFields;

impl MaskedTextFields {
    fn write_map(
        writer: &mut Writer<'_>,
        map: &Map<String, Value>,
        mut first: bool,
    ) -> fmt::Result {
        for (key, value) in map {
            if !first {
                writer.write_char(' ')?;
            }
            first = false;
            match (key.as_str(), value) {
                ("message", Value::String(s)) => writer.write_str(s)?,
                (_, Value::String(s)) => write!(writer, "{key}={s}")?,
                (_, other) => write!(writer, "{key}={other}")?,
            }
        }
        Ok(())
    }
}

impl<'writer> FormatFields<'writer> for MaskedTextFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = MaskVisitor::default();
        fields.record(&mut visitor);
        // The message first, as the default format has it.
        let mut map = Map::new();
        if let Some(message) = visitor.0.remove("message") {
            map.insert("message".into(), message);
        }
        map.extend(visitor.0);
        Self::write_map(&mut writer, &map, true)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut visitor = MaskVisitor::default();
        fields.record(&mut visitor);
        let first = current.fields.is_empty();
        let mut writer = current.as_writer();
        Self::write_map(&mut writer, &visitor.0, first)
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[test]
    fn names_keep_one_character_and_ids_only_their_tail() {
        assert_eq!(mask("patn_name", "张三"), "张*");
        assert_eq!(mask("patn_name", "欧阳娜娜"), "欧***");
        assert_eq!(mask("patn_id", "P00012345678"), "********5678");
        assert_eq!(mask("mdtrt_id", "MD1234"), "****34");
        assert_eq!(mask("rx_id", "R1"), "***");
        assert!(is_sensitive("patn_name") && is_sensitive("certno"));
        assert!(!is_sensitive("rule_id") && !is_sensitive("fixmedins_code"));
    }

    /// Captures what the subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn log_a_patient(format: LogFormat) -> String {
        let capture = Capture::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .with_max_level(tracing::Level::DEBUG);
        let dispatch: tracing::Dispatch = match format {
            LogFormat::Json => builder
                .fmt_fields(MaskedJsonFields)
                .event_format(MaskedJson)
                .finish()
                .into(),
            LogFormat::Text => builder.fmt_fields(MaskedTextFields).finish().into(),
        };
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!(
                "request",
                endpoint = "3101",
                mdtrt_id = tracing::field::Empty
            );
            let _entered = span.enter();
            span.record("mdtrt_id", "MDT-2026-000777");
            tracing::info!(
                patn_name = "王小明",
                patn_id = "P4401060000123",
                certno = %"440106199001011234",
                rule_id = "GZ10000301004000",
                "inline check queued"
            );
        });
        let bytes = capture.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn personal_data_is_masked_in_json_and_text_logs() {
        for format in [LogFormat::Json, LogFormat::Text] {
            let out = log_a_patient(format);
            for secret in [
                "王小明",
                "小明",
                "P4401060000123",
                "440106199001011234",
                "MDT-2026-000777",
            ] {
                assert!(
                    !out.contains(secret),
                    "{format:?} log shows {secret}: {out}"
                );
            }
            assert!(out.contains("王**"), "{format:?}: {out}");
            assert!(out.contains("**********0123"), "{format:?}: {out}");
            assert!(
                out.contains("GZ10000301004000"),
                "rule ids stay readable: {out}"
            );
            assert!(out.contains("inline check queued"), "{out}");
        }
        let json = log_a_patient(LogFormat::Json);
        let line: Value = serde_json::from_str(json.trim()).expect("one JSON object per line");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "inline check queued");
        assert_eq!(line["spans"][0]["name"], "request");
        assert_eq!(line["spans"][0]["endpoint"], "3101");
        assert_eq!(line["spans"][0]["mdtrt_id"], "***********0777");
    }
}
