//! `--since`: a duration ago (`90s`, `30m`, `12h`, `7d`) or a UTC time
//! (`2026-11-21`, `2026-11-21T10:00:00Z`, with an optional `+HH:MM` or
//! `-HH:MM` offset instead of `Z`).

use super::AuditError;

/// Unix milliseconds for `value`, relative to `now_ms` for durations.
pub fn parse_since(field: &'static str, value: &str, now_ms: i64) -> Result<i64, AuditError> {
    let bad = |reason: &str| AuditError::BadTime { field, value: value.to_owned(), reason: reason.to_owned() };
    let v = value.trim();
    if v.is_empty() {
        return Err(bad("empty (give e.g. 30m, 12h, 7d or 2026-11-21T10:00:00Z)"));
    }
    if let Some((num, unit)) = v.char_indices().last().map(|(i, c)| (&v[..i], c)) {
        let mult: Option<i64> = match unit {
            's' => Some(1_000),
            'm' => Some(60_000),
            'h' => Some(3_600_000),
            'd' => Some(86_400_000),
            _ => None,
        };
        if let Some(mult) = mult.filter(|_| !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit())) {
            let n: i64 = num.parse().map_err(|_| bad("the number is too large"))?;
            let ago = n.checked_mul(mult).filter(|ms| *ms <= now_ms).ok_or_else(|| bad("reaches before 1970"))?;
            return Ok(now_ms - ago);
        }
    }
    parse_utc(v).map_err(|r| bad(&r))
}

fn num(s: &str, what: &str, lo: i64, hi: i64) -> Result<i64, String> {
    let n: i64 = s
        .parse()
        .ok()
        .filter(|_| s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty())
        .ok_or_else(|| format!("the {what} '{s}' is not a number"))?;
    if n < lo || n > hi {
        return Err(format!("the {what} {n} is not between {lo} and {hi}"));
    }
    Ok(n)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_utc(v: &str) -> Result<i64, String> {
    const SHAPE: &str = "use a duration (30m, 12h, 7d) or YYYY-MM-DD[THH:MM:SS](Z|+HH:MM|-HH:MM)";
    let (date, time) = match v.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (v, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts.as_slice() else { return Err(SHAPE.into()) };
    let (y, m) = (num(y, "year", 1970, 9999)?, num(m, "month", 1, 12)?);
    let month_days = [
        31,
        if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let d = num(d, "day", 1, month_days[(m - 1) as usize])?;
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    if let Some(t) = time {
        let (clock, offset_min) = if let Some(c) = t.strip_suffix('Z') {
            (c, 0)
        } else if let Some(i) = t.rfind(['+', '-']) {
            let (c, off) = t.split_at(i);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (h, mi) =
                off[1..].split_once(':').ok_or_else(|| format!("the offset '{off}' is not +HH:MM or -HH:MM"))?;
            (c, sign * (num(h, "offset hour", 0, 23)? * 60 + num(mi, "offset minute", 0, 59)?))
        } else {
            return Err("a time needs Z or an offset (+HH:MM), so it is not read in a local zone by mistake".into());
        };
        let hms: Vec<&str> = clock.split(':').collect();
        let (h, mi, s) = match hms.as_slice() {
            [h, mi] => (*h, *mi, "0"),
            [h, mi, s] => (*h, *mi, *s),
            _ => return Err(SHAPE.into()),
        };
        ms += (num(h, "hour", 0, 23)? * 3600 + num(mi, "minute", 0, 59)? * 60 + num(s, "second", 0, 60)?) * 1000;
        ms -= offset_min * 60_000;
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_since("--since", "90s", now), Ok(now - 90_000));
        assert_eq!(parse_since("--since", "30m", now), Ok(now - 1_800_000));
        assert_eq!(parse_since("--since", "2d", now), Ok(now - 172_800_000));
        assert_eq!(parse_since("--since", "1970-01-02", now), Ok(86_400_000));
        assert_eq!(parse_since("--since", "2026-11-21T10:00:00Z", now), Ok(1_795_255_200_000));
        assert_eq!(parse_since("--since", "2026-11-21T12:00:00+02:00", now), Ok(1_795_255_200_000));
        assert_eq!(parse_since("--since", "2024-02-29T00:00Z", now), Ok(1_709_164_800_000));
    }

    #[test]
    fn malformed_names_the_field_and_why() {
        let now = 1_800_000_000_000;
        for (v, why) in [
            ("yesterday", "use a duration"),
            ("", "empty"),
            ("5w", "use a duration"),
            ("2026-13-01", "the month 13"),
            ("2023-02-29", "the day 29"),
            ("2026-11-21T10:00:00", "needs Z or an offset"),
            ("2026-11-21T25:00Z", "the hour 25"),
            ("99999999999d", "before 1970"),
        ] {
            let e = parse_since("--since", v, now).expect_err(v).to_string();
            assert!(e.starts_with(&format!("--since: '{v}' is not a time: ")), "{e}");
            assert!(e.contains(why), "{v}: {e}");
        }
    }
}
