//! When attempts are made: the retry schedule, what an answer means for the job, jitter.

use crate::ports::{AttemptOutcome, DeliveryError};

pub use crate::ports::DEFAULT_WEBHOOK_SCHEDULE_MS as DEFAULT_SCHEDULE_MS;

/// Reads a schedule like `0s,1m,5m,30m,2h,8h` (units `ms`, `s`, `m`, `h`) into milliseconds.
pub fn parse_schedule(text: &str) -> Result<Vec<u64>, String> {
    let delays = text
        .split(',')
        .map(str::trim)
        .map(|part| {
            let split = part
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(|| format!("{part:?} needs a unit (ms, s, m, h)"))?;
            let (number, unit) = part.split_at(split);
            let number: u64 = number
                .parse()
                .map_err(|_| format!("{part:?} is not a number with a unit"))?;
            let scale = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => return Err(format!("{part:?}: unknown unit {unit:?}")),
            };
            Ok(number.saturating_mul(scale))
        })
        .collect::<Result<Vec<u64>, String>>()?;
    if delays.is_empty() || delays.len() > 20 {
        return Err("the schedule needs 1 to 20 attempts".into());
    }
    Ok(delays)
}

/// What a finished attempt means for the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// Timeout, connection or TLS error, 408, 429, 5xx.
    Retry,
    /// Any other answer, or a destination that may never be reached.
    Final,
}

pub fn classify(outcome: &AttemptOutcome) -> Verdict {
    match (outcome.status_code, outcome.error) {
        (_, Some(DeliveryError::DestinationForbidden | DeliveryError::WebhookDisabled)) => {
            Verdict::Final
        }
        (_, Some(_)) | (None, None) => Verdict::Retry,
        (Some(status), None) if (200..300).contains(&status) => Verdict::Success,
        (Some(408 | 429), None) => Verdict::Retry,
        (Some(status), None) if status >= 500 => Verdict::Retry,
        (Some(_), None) => Verdict::Final,
    }
}

/// A non-zero delay scaled by the jitter factor (drawn by the caller from [0.9, 1.1]).
pub fn jittered(delay_ms: u64, factor: f64) -> u64 {
    if delay_ms == 0 {
        0
    } else {
        (delay_ms as f64 * factor.clamp(0.9, 1.1)).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: Option<u16>, error: Option<DeliveryError>) -> AttemptOutcome {
        AttemptOutcome {
            status_code: status,
            error,
            duration_ms: 1,
            response_body: None,
        }
    }

    #[test]
    fn classifies_answers_as_the_spec_lists_them() {
        for status in [200, 201, 204, 299] {
            assert_eq!(classify(&outcome(Some(status), None)), Verdict::Success);
        }
        for status in [408, 429, 500, 502, 503, 599] {
            assert_eq!(classify(&outcome(Some(status), None)), Verdict::Retry);
        }
        for status in [301, 302, 400, 401, 404, 410, 422] {
            assert_eq!(classify(&outcome(Some(status), None)), Verdict::Final);
        }
        for error in [
            DeliveryError::Timeout,
            DeliveryError::Connect,
            DeliveryError::Tls,
        ] {
            assert_eq!(classify(&outcome(None, Some(error))), Verdict::Retry);
        }
        assert_eq!(
            classify(&outcome(None, Some(DeliveryError::DestinationForbidden))),
            Verdict::Final
        );
    }

    #[test]
    fn schedules_read_with_units() {
        assert_eq!(
            parse_schedule("0s,1m,5m,30m,2h,8h").unwrap(),
            DEFAULT_SCHEDULE_MS.to_vec()
        );
        assert_eq!(parse_schedule("0ms, 50ms").unwrap(), vec![0, 50]);
        assert!(parse_schedule("1").is_err());
        assert!(parse_schedule("1d").is_err());
        assert!(parse_schedule("").is_err());
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_spares_zero() {
        assert_eq!(jittered(0, 1.1), 0);
        assert_eq!(jittered(60_000, 0.9), 54_000);
        assert_eq!(jittered(60_000, 1.1), 66_000);
        assert_eq!(jittered(60_000, 5.0), 66_000);
    }
}
