//! Instants stored as whole milliseconds since the Unix epoch.
//!
//! Integers sort and compare the same way on SQLite and PostgreSQL, which text timestamps with
//! variable fractional digits do not; the wire form is always RFC 3339 UTC with milliseconds.

use std::fmt;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// A UTC instant with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// The wall clock. Only adapters (the system [`crate::ports::Clock`]) and tests call it:
    /// use cases take the time from the `Clock` port, so a test can set it.
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    pub fn from_datetime(at: OffsetDateTime) -> Self {
        Self((at.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Parses RFC 3339 (any offset, any precision); sub-millisecond digits are dropped.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .map(Self::from_datetime)
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds.saturating_mul(1000)))
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.to_datetime();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.millisecond()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc3339_utc_with_millis_and_parses_back() {
        let t = Timestamp::parse_rfc3339("2025-01-19T11:30:00.5+01:00").unwrap();
        assert_eq!(t.to_string(), "2025-01-19T10:30:00.500Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t));
        assert_eq!(t.unix_seconds(), 1_737_282_600);
    }

    /// Use cases take the time from the `Clock` port: no file of the domain but this one
    /// reads the wall clock.
    #[test]
    fn only_the_clock_port_gives_the_time() {
        fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    sources(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root, &mut files);
        assert!(files.len() > 20, "found the domain's sources");
        let readers: Vec<_> = files
            .iter()
            .filter(|f| !f.ends_with("timestamp.rs"))
            .filter(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                [
                    "Timestamp::now(",
                    "now_utc(",
                    "SystemTime::now(",
                    "Instant::now(",
                ]
                .iter()
                .any(|call| text.contains(call))
            })
            .collect();
        assert!(readers.is_empty(), "read the wall clock: {readers:?}");
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(Timestamp::parse_rfc3339("2025-01-19").is_none());
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
    }
}
