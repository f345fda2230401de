//! Times as findings write them: UTC, to the second, RFC 3339
//! (`2026-11-22T18:20:46Z`), from the milliseconds or seconds the host's
//! interfaces give, with no time-zone database in the guest.

/// `ms` since the Unix epoch as `2026-11-22T18:20:46Z`.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (year, month, day) = civil(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The UTC date of `secs` since the Unix epoch, as `2026-11-22`.
pub fn date(secs: i64) -> String {
    let (year, month, day) = civil(secs.div_euclid(86_400));
    format!("{year:04}-{month:02}-{day:02}")
}

/// Seconds since the Unix epoch, now (the host's wall clock).
pub fn now_secs() -> i64 {
    crate::collectors::now_ms().div_euclid(1000)
}

/// The (year, month, day) of a day number since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_795_371_646_244), "2026-11-22T18:20:46Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(-1_000), "1969-12-31T23:59:59Z");
        assert_eq!(date(2_082_844_800), "2036-01-02");
    }
}
