//! The proxy's access log: one line per request, formatted on the worker into a buffer of
//! that worker's own and handed to a writer thread a buffer at a time (at 16 KiB, or at the
//! worker's next tick). A worker never writes to the terminal or a pipe itself, so a slow
//! standard error cannot stall requests; if the writer falls that far behind, whole buffers
//! are dropped and counted (`tollgate_access_log_dropped_lines_total`) instead of queued
//! without bound.

use std::{
    cell::RefCell,
    fmt::Write as _,
    io::Write as _,
    sync::mpsc::{SyncSender, TrySendError, sync_channel},
};

use tollgate_domain::Timestamp;

/// `TOLLGATE_ACCESS_LOG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    Off,
    #[default]
    Text,
    Json,
}

impl AccessLogFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "off" => Some(Self::Off),
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// What one line says.
pub struct AccessLine<'a> {
    pub at: Timestamp,
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub code: &'a str,
    pub latency_ms: f64,
    pub key_prefix: &'a str,
}

/// A worker hands its buffer over once it holds this much.
const HAND_OVER_AT: usize = 16 * 1024;
/// Buffers waiting for the writer; beyond them lines are dropped.
const QUEUED_BUFFERS: usize = 256;

struct Buffer {
    bytes: Vec<u8>,
    lines: u64,
}

thread_local! {
    static BUFFER: RefCell<Buffer> = const { RefCell::new(Buffer { bytes: Vec::new(), lines: 0 }) };
}

pub struct AccessLog {
    format: AccessLogFormat,
    writer: Option<SyncSender<Vec<u8>>>,
}

impl AccessLog {
    /// Starts the writer thread (none when the log is off).
    pub fn start(format: AccessLogFormat) -> Self {
        if format == AccessLogFormat::Off {
            return Self {
                format,
                writer: None,
            };
        }
        let (writer, buffers) = sync_channel::<Vec<u8>>(QUEUED_BUFFERS);
        let started = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                // Ends when the log (every sender) is gone.
                for buffer in buffers {
                    let mut stderr = std::io::stderr().lock();
                    let _ = stderr.write_all(&buffer);
                    let _ = stderr.flush();
                }
            });
        if let Err(e) = started {
            tracing::error!(error = %e, "cannot start the access-log writer: access log off");
            return Self {
                format: AccessLogFormat::Off,
                writer: None,
            };
        }
        Self {
            format,
            writer: Some(writer),
        }
    }

    pub fn format(&self) -> AccessLogFormat {
        self.format
    }

    /// Formats the line into this thread's buffer; hands the buffer over when it is full.
    pub fn record(&self, line: &AccessLine<'_>) {
        if self.writer.is_none() {
            return;
        }
        let full = BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            let mut text = String::with_capacity(256);
            match self.format {
                AccessLogFormat::Json => json_line(&mut text, line),
                _ => text_line(&mut text, line),
            }
            buffer.bytes.extend_from_slice(text.as_bytes());
            buffer.lines += 1;
            buffer.bytes.len() >= HAND_OVER_AT
        });
        if full {
            self.flush_local();
        }
    }

    /// Hands this thread's buffered lines to the writer (each worker calls it on a timer and
    /// when it stops).
    pub fn flush_local(&self) {
        let Some(writer) = &self.writer else { return };
        let (bytes, lines) = BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            let lines = std::mem::take(&mut buffer.lines);
            (std::mem::take(&mut buffer.bytes), lines)
        });
        if bytes.is_empty() {
            return;
        }
        match writer.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                metrics::counter!("tollgate_access_log_dropped_lines_total").increment(lines);
            }
        }
    }
}

/// `2026-12-07T16:42:27.123Z  INFO tollgate::access: request listener="proxy" request_id=…`
/// — the shape of the other log lines in text mode.
fn text_line(out: &mut String, line: &AccessLine<'_>) {
    let _ = writeln!(
        out,
        "{}  INFO tollgate::access: request listener=\"proxy\" request_id={} method={} path={} \
         route={} status={} code={} latency_ms={:.3} key_prefix={}",
        line.at,
        line.request_id,
        line.method,
        line.path,
        line.route,
        line.status,
        line.code,
        line.latency_ms,
        line.key_prefix,
    );
}

/// One JSON object per line, with the fields of the text line (as tracing's JSON lines put
/// them: under `fields`).
fn json_line(out: &mut String, line: &AccessLine<'_>) {
    let value = serde_json::json!({
        "timestamp": line.at.to_string(),
        "level": "INFO",
        "target": "tollgate::access",
        "fields": {
            "message": "request",
            "listener": "proxy",
            "request_id": line.request_id,
            "method": line.method,
            "path": line.path,
            "route": line.route,
            "status": line.status,
            "code": line.code,
            "latency_ms": line.latency_ms,
            "key_prefix": line.key_prefix,
        }
    });
    out.push_str(&value.to_string());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AccessLine<'static> {
        AccessLine {
            at: Timestamp::from_millis(1_796_000_000_123),
            request_id: "req_1",
            method: "GET",
            path: "/a\"b",
            route: "rte_1",
            status: 200,
            code: "OK",
            latency_ms: 0.1234,
            key_prefix: "tg_live_abcdefgh",
        }
    }

    #[test]
    fn json_lines_parse_and_keep_every_field() {
        let mut out = String::new();
        json_line(&mut out, &sample());
        assert!(out.ends_with('\n'));
        let value: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(value["fields"]["path"], "/a\"b");
        assert_eq!(value["fields"]["status"], 200);
        assert_eq!(value["target"], "tollgate::access");
    }

    #[test]
    fn text_lines_are_one_line_without_colour_codes() {
        let mut out = String::new();
        text_line(&mut out, &sample());
        assert_eq!(out.matches('\n').count(), 1);
        assert!(!out.contains('\u{1b}'));
        assert!(out.contains("request_id=req_1 method=GET"));
        assert!(out.contains("latency_ms=0.123"));
    }

    #[test]
    fn formats_are_parsed_strictly() {
        assert_eq!(AccessLogFormat::parse("off"), Some(AccessLogFormat::Off));
        assert_eq!(AccessLogFormat::parse("json"), Some(AccessLogFormat::Json));
        assert_eq!(AccessLogFormat::parse("JSON"), None);
    }
}
