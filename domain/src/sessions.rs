//! Browser sessions: lifetimes and the liveness rule shared by cookies and bearer tokens.

use serde_json::Value;

use crate::{Row, Timestamp};

/// A session dies after this long without use…
pub const IDLE_MS: i64 = 24 * 3600 * 1000;
/// …and this long after login, whatever happens.
pub const ABSOLUTE_MS: i64 = 7 * 24 * 3600 * 1000;
/// `last_seen_at` is refreshed at most this often.
pub const TOUCH_MS: i64 = 60 * 1000;
/// Bearer tokens live one hour.
pub const TOKEN_TTL_SECONDS: i64 = 3600;

/// Whether a `sessions` row is still usable at `now`.
pub fn is_alive(row: &Row, now: Timestamp) -> bool {
    let at = |column: &str| row.get(column).and_then(Value::as_i64).unwrap_or(0);
    at("expires_at") > now.millis() && at("last_seen_at") + IDLE_MS > now.millis()
}

/// Whether `last_seen_at` is old enough to be refreshed.
pub fn needs_touch(row: &Row, now: Timestamp) -> bool {
    row.get("last_seen_at")
        .and_then(Value::as_i64)
        .is_none_or(|seen| seen + TOUCH_MS <= now.millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(created: i64, seen: i64) -> Row {
        let mut r = Row::new();
        r.insert("expires_at".into(), json!(created + ABSOLUTE_MS));
        r.insert("last_seen_at".into(), json!(seen));
        r
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let start = 1_000_000;
        assert!(is_alive(
            &row(start, start),
            Timestamp::from_millis(start + IDLE_MS - 1)
        ));
        assert!(!is_alive(
            &row(start, start),
            Timestamp::from_millis(start + IDLE_MS)
        ));
        let recent = start + ABSOLUTE_MS - 10;
        assert!(!is_alive(
            &row(start, recent),
            Timestamp::from_millis(start + ABSOLUTE_MS)
        ));
        assert!(needs_touch(
            &row(start, start),
            Timestamp::from_millis(start + TOUCH_MS)
        ));
        assert!(!needs_touch(
            &row(start, start),
            Timestamp::from_millis(start + 5)
        ));
    }
}
