//! Cron expressions with seconds and a time zone (the `cron` crate over
//! `chrono-tz`), and the two questions the scheduler asks of them: the next
//! tick after a moment, and the latest tick at or before one. A bad
//! expression is refused naming the field and the column it starts at.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use jiff::Timestamp;

/// The fields of a 6- or 7-field expression, in order.
const FIELDS: [&str; 7] = [
    "seconds",
    "minutes",
    "hours",
    "day of month",
    "month",
    "day of week",
    "year",
];

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    source: String,
    schedule: cron::Schedule,
    tz: Tz,
}

/// Why an expression or time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "{expr:?} has {count} fields; expected 5 (minute hour day month weekday), 6 (with seconds first) or 7 (with a year last)"
    )]
    FieldCount { expr: String, count: usize },
    #[error("{expr:?}: the {field} field {value:?} at column {column} is not valid: {reason}")]
    Field {
        expr: String,
        field: &'static str,
        value: String,
        column: usize,
        reason: String,
    },
    #[error("{expr:?} is not a valid cron expression: {reason}")]
    Other { expr: String, reason: String },
    #[error("{0:?} is not a known IANA time zone (e.g. UTC, Europe/Berlin)")]
    TimeZone(String),
}

/// An IANA time zone by name.
pub fn parse_timezone(name: &str) -> Result<Tz, ScheduleError> {
    Tz::from_str(name).map_err(|_| ScheduleError::TimeZone(name.to_string()))
}

impl CronSchedule {
    /// Parses `expr` in the time zone `tz`. Five fields are taken as
    /// minute-resolution cron (seconds 0); `@hourly`-style names are accepted.
    pub fn parse(expr: &str, tz: &str) -> Result<CronSchedule, ScheduleError> {
        let tz = parse_timezone(tz)?;
        let trimmed = expr.trim();
        let fields: Vec<(usize, &str)> = split_fields(trimmed);
        let full = if trimmed.starts_with('@') {
            trimmed.to_string()
        } else {
            match fields.len() {
                5 => {
                    let mut parts: Vec<String> =
                        fields.iter().map(|(_, f)| f.to_string()).collect();
                    if let Some(dow) = unix_weekdays(&parts[4]) {
                        parts[4] = dow;
                    }
                    format!("0 {}", parts.join(" "))
                }
                6 | 7 => trimmed.to_string(),
                count => {
                    return Err(ScheduleError::FieldCount {
                        expr: expr.to_string(),
                        count,
                    });
                }
            }
        };
        match cron::Schedule::from_str(&full) {
            Ok(schedule) => Ok(CronSchedule {
                source: expr.to_string(),
                schedule,
                tz,
            }),
            Err(e) => Err(locate(expr, &fields, e.to_string())),
        }
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The time zone's name.
    pub fn timezone(&self) -> &str {
        self.tz.name()
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let at = to_chrono(t).with_timezone(&self.tz);
        self.schedule
            .after(&at)
            .next()
            .map(|d| from_chrono(d.with_timezone(&Utc)))
    }

    /// The latest tick in `(after, until]`, if any: the one a catch-up run
    /// stands for. Walks at most `limit` ticks (then answers the last seen).
    pub fn latest_in(&self, after: Timestamp, until: Timestamp) -> Option<Timestamp> {
        let start = to_chrono(after).with_timezone(&self.tz);
        let end = to_chrono(until);
        let mut latest = None;
        for (i, tick) in self.schedule.after(&start).enumerate() {
            if tick.with_timezone(&Utc) > end || i >= 10_000_000 {
                break;
            }
            latest = Some(tick);
        }
        latest.map(|d| from_chrono(d.with_timezone(&Utc)))
    }

    /// A typical period: the gap between the next two ticks after `t`.
    pub fn period_after(&self, t: Timestamp) -> Option<std::time::Duration> {
        let a = self.next_after(t)?;
        let b = self.next_after(a)?;
        b.duration_since(a).try_into().ok()
    }
}

/// Unix cron counts weekdays 0-7 from Sunday (0 and 7 both Sunday, 1
/// Monday); the `cron` crate, like Quartz, counts 1-7 from Sunday. A
/// five-field (Unix) expression's weekday field is rewritten as the explicit
/// list of days it means, in the crate's numbers. `None` leaves the field as
/// written (a `*`, or something the crate will name as invalid).
fn unix_weekdays(field: &str) -> Option<String> {
    if field == "*" || field == "?" {
        return None;
    }
    let day = |s: &str| -> Option<u32> {
        const FULL: [&str; 7] = [
            "sunday",
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
        ];
        if let Ok(n) = s.parse::<u32>() {
            return (n <= 7).then_some(n);
        }
        let lower = s.to_ascii_lowercase();
        FULL.iter()
            .position(|name| lower == *name || (lower.len() == 3 && name.starts_with(&lower)))
            .map(|i| i as u32)
    };
    let mut days = [false; 7];
    for token in field.split(',') {
        let (base, step) = match token.split_once('/') {
            Some((b, s)) => (b, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (token, 1),
        };
        let (lo, hi) = match base {
            "*" | "?" => (0, 6),
            _ => match base.split_once('-') {
                Some((a, b)) => (day(a)?, day(b)?),
                None if token.contains('/') => (day(base)?, 6),
                None => (day(base)?, day(base)?),
            },
        };
        if lo > hi {
            return None;
        }
        let mut d = lo;
        while d <= hi {
            days[(d % 7) as usize] = true;
            d += step;
        }
    }
    let list: Vec<String> = (0..7)
        .filter(|d| days[*d])
        .map(|d| (d + 1).to_string())
        .collect();
    Some(list.join(","))
}

fn split_fields(expr: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in expr.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((s, &expr[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &expr[s..]));
    }
    out
}

/// Finds the first field that does not parse alone (every other field `*`).
fn locate(expr: &str, fields: &[(usize, &str)], reason: String) -> ScheduleError {
    // Offsets in `expr` as written: it may have leading spaces.
    let lead = expr.len() - expr.trim_start().len();
    let five = fields.len() == 5;
    for (i, (offset, value)) in fields.iter().enumerate() {
        let index = if five { i + 1 } else { i };
        let mut probe: Vec<String> = vec!["*".into(); fields.len() + usize::from(five)];
        probe[0] = "0".into();
        probe[index] = match (five && index == 5).then(|| unix_weekdays(value)).flatten() {
            Some(days) => days,
            None => value.to_string(),
        };
        let probe = probe.join(" ");
        if let Err(e) = cron::Schedule::from_str(&probe) {
            return ScheduleError::Field {
                expr: expr.to_string(),
                field: FIELDS[index],
                value: value.to_string(),
                column: lead + offset + 1,
                reason: e.to_string(),
            };
        }
    }
    ScheduleError::Other {
        expr: expr.to_string(),
        reason,
    }
}

fn to_chrono(t: Timestamp) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(t.as_millisecond())
        .single()
        .unwrap_or_else(Utc::now)
}

fn from_chrono(d: DateTime<Utc>) -> Timestamp {
    Timestamp::from_millisecond(d.timestamp_millis()).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn six_and_five_field_expressions_tick_where_expected() {
        let s = CronSchedule::parse("0 */5 * * * *", "UTC").unwrap();
        assert_eq!(
            s.next_after(ts("2026-12-01T10:02:30Z")),
            Some(ts("2026-12-01T10:05:00Z"))
        );
        let s = CronSchedule::parse("30 9 * * 1", "UTC").unwrap();
        // 2026-12-01 is a Tuesday: the next Monday is the 7th.
        assert_eq!(
            s.next_after(ts("2026-12-01T00:00:00Z")),
            Some(ts("2026-12-07T09:30:00Z"))
        );
        let s = CronSchedule::parse("*/10 * * * * *", "UTC").unwrap();
        assert_eq!(
            s.period_after(ts("2026-12-01T00:00:00Z")),
            Some(std::time::Duration::from_secs(10))
        );
        assert!(CronSchedule::parse("@hourly", "UTC").is_ok());
        // Six fields count weekdays as the cron crate (and Quartz) do: 2 is Monday.
        let s = CronSchedule::parse("0 30 9 * * 2", "UTC").unwrap();
        assert_eq!(
            s.next_after(ts("2026-12-01T00:00:00Z")),
            Some(ts("2026-12-07T09:30:00Z"))
        );
    }

    #[test]
    fn five_field_weekdays_mean_what_unix_cron_means() {
        // 2026-12-06 is a Sunday.
        let next = |expr: &str| {
            CronSchedule::parse(expr, "UTC")
                .unwrap()
                .next_after(ts("2026-12-05T12:00:00Z"))
                .unwrap()
        };
        assert_eq!(next("0 9 * * 0"), ts("2026-12-06T09:00:00Z"), "0 is Sunday");
        assert_eq!(
            next("0 9 * * 7"),
            ts("2026-12-06T09:00:00Z"),
            "7 is Sunday too"
        );
        assert_eq!(
            next("0 9 * * 1-5"),
            ts("2026-12-07T09:00:00Z"),
            "Monday to Friday"
        );
        assert_eq!(next("0 9 * * MON-FRI"), ts("2026-12-07T09:00:00Z"));
        assert_eq!(
            next("0 9 * * 5-7"),
            ts("2026-12-06T09:00:00Z"),
            "Friday to Sunday"
        );
        assert_eq!(
            next("0 9 * * */2"),
            ts("2026-12-06T09:00:00Z"),
            "Sun, Tue, Thu, Sat"
        );
        assert_eq!(unix_weekdays("1-5").as_deref(), Some("2,3,4,5,6"));
        assert_eq!(unix_weekdays("sat,sun").as_deref(), Some("1,7"));
        assert_eq!(unix_weekdays("*"), None);
        assert_eq!(unix_weekdays("9"), None, "left for the crate to refuse");
    }

    #[test]
    fn the_time_zone_is_honoured_across_daylight_saving() {
        // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
        let s = CronSchedule::parse("0 0 9 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            s.next_after(ts("2026-12-01T00:00:00Z")),
            Some(ts("2026-12-01T08:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-07-01T00:00:00Z")),
            Some(ts("2026-07-01T07:00:00Z"))
        );
    }

    #[test]
    fn the_latest_missed_tick_is_found_once() {
        let s = CronSchedule::parse("0 * * * * *", "UTC").unwrap();
        assert_eq!(
            s.latest_in(ts("2026-12-01T10:00:00Z"), ts("2026-12-01T13:30:10Z")),
            Some(ts("2026-12-01T13:30:00Z"))
        );
        assert_eq!(
            s.latest_in(ts("2026-12-01T10:00:00Z"), ts("2026-12-01T10:00:59Z")),
            None
        );
    }

    #[test]
    fn a_bad_field_is_named_with_its_column() {
        let err = CronSchedule::parse("0 61 * * * *", "UTC").unwrap_err();
        match &err {
            ScheduleError::Field {
                field,
                column,
                value,
                ..
            } => {
                assert_eq!((*field, *column, value.as_str()), ("minutes", 3, "61"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string().contains("minutes field \"61\" at column 3"),
            "{err}"
        );
        // Five fields: the first is minutes.
        let err = CronSchedule::parse("*/5 25 * * *", "UTC")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hours field \"25\" at column 5"), "{err}");
        let err = CronSchedule::parse("0 0 * * * Funday", "UTC")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("day of week") && err.contains("column 11"),
            "{err}"
        );
        let err = CronSchedule::parse("* *", "UTC").unwrap_err().to_string();
        assert!(err.contains("has 2 fields"), "{err}");
        let err = CronSchedule::parse("0 * * * * *", "Nowhere/City")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Nowhere/City"), "{err}");
    }
}
