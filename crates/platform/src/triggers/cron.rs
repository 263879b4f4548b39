//! CRON expressions: the standard five Unix fields (minute, hour, day of month, month, day of
//! week) with `*`, ranges `a-b`, lists `a,b`, steps `*/n` and `a-b/n`, month and weekday names
//! (`jan`, `mon`, ...), and the `@hourly`-style shorthands. Always UTC, as Scaleway's.
//!
//! As in Vixie cron, when both the day of month and the day of week are restricted (neither
//! is `*`), a day matching either one matches. Times are Unix seconds; a schedule's slots are
//! whole minutes.

use std::fmt;

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field { name: "minute", min: 0, max: 59, names: &[] },
    Field { name: "hour", min: 0, max: 23, names: &[] },
    Field { name: "day of month", min: 1, max: 31, names: &[] },
    Field { name: "month", min: 1, max: 12, names: &MONTHS },
    // 7 is Sunday too, as in every cron.
    Field { name: "day of week", min: 0, max: 7, names: &WEEKDAYS },
];

/// A parsed expression: one bit per allowed value of each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Day of month and day of week both restricted: either matches.
    either_day: bool,
    source: String,
}

/// Why an expression is not valid, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError(pub String);

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn value(field: &Field, s: &str) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = field.names.iter().position(|n| *n == lower) {
        // Months are named from 1, weekdays from 0: each field's minimum.
        return Ok(i as u32 + field.min);
    }
    let n: u32 = s.parse().map_err(|_| {
        let names = if field.names.is_empty() {
            String::new()
        } else {
            format!(" or a name ({}-{})", field.names[0], field.names[field.names.len() - 1])
        };
        format!("'{s}' is not a number{names}")
    })?;
    if n < field.min || n > field.max {
        return Err(format!("{n} is out of range {}-{}", field.min, field.max));
    }
    Ok(n)
}

/// The bits one field allows.
fn parse_field(field: &Field, text: &str) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        if part.is_empty() {
            return Err("an empty item in a list (two commas, or a trailing one)".into());
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("step '{s}' is not a number"))?;
                if step == 0 || step > field.max {
                    return Err(format!("step {step} must be 1 to {}", field.max));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (field.min, field.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(field, a)?, value(field, b)?);
            if a > b {
                return Err(format!("range {a}-{b} goes backwards: write the smaller value first"));
            }
            (a, b)
        } else {
            let a = value(field, range)?;
            // `5/15` means from 5 to the end, every 15.
            (a, if part.contains('/') { field.max } else { a })
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Self, CronError> {
        let trimmed = expr.trim();
        let expanded = match trimmed {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => {
                return Err(CronError(format!(
                    "cron expression '{expr}': '{s}' is not a shorthand: use @yearly, @monthly, @weekly, @daily or @hourly, or five fields"
                )))
            }
            s => s,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(CronError(format!(
                "cron expression '{expr}' has {} field(s): use five (minute hour day-of-month month day-of-week), for example '*/5 * * * *'",
                parts.len()
            )));
        }
        let mut bits = [0u64; 5];
        for (i, (field, text)) in FIELDS.iter().zip(&parts).enumerate() {
            bits[i] = parse_field(field, text).map_err(|why| {
                CronError(format!("cron expression '{expr}': field {} ({}) '{text}': {why}", i + 1, field.name))
            })?;
        }
        // Sunday is 0 and 7.
        let weekdays = ((bits[4] | (bits[4] >> 7)) & 0x7f) as u8;
        Ok(Self {
            minutes: bits[0],
            hours: bits[1] as u32,
            days: bits[2] as u32,
            months: bits[3] as u16,
            weekdays,
            either_day: !parts[2].starts_with('*') && !parts[4].starts_with('*'),
            source: trimmed.to_string(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    fn day_matches(&self, d: &Date) -> bool {
        if self.months & (1 << d.month) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day) != 0;
        let dow = self.weekdays & (1 << d.weekday) != 0;
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The first slot strictly after `t` (Unix seconds), or `None` if there is none within
    /// five years (`0 0 30 2 *`: February 30th).
    pub fn next_after(&self, t: i64) -> Option<i64> {
        let start = t.div_euclid(60) * 60 + 60;
        let first = start.div_euclid(86_400);
        let mut from_minute = (start.rem_euclid(86_400) / 60) as u32;
        for day in first..first + 5 * 366 {
            if self.day_matches(&Date::from_days(day)) {
                for m in from_minute..1440 {
                    if self.hours & (1 << (m / 60)) != 0 && self.minutes & (1 << (m % 60)) != 0 {
                        return Some(day * 86_400 + m as i64 * 60);
                    }
                }
            }
            from_minute = 0;
        }
        None
    }

    /// The last slot at or before `t`, if it is later than `after`: the one slot to fire
    /// after a pause (a restart), however many were missed.
    pub fn last_between(&self, after: i64, t: i64) -> Option<i64> {
        let mut day = t.div_euclid(86_400);
        let mut to_minute = t.rem_euclid(86_400) / 60;
        let oldest = t.div_euclid(86_400) - 5 * 366;
        while day * 86_400 + 1440 * 60 > after && day >= oldest {
            if self.day_matches(&Date::from_days(day)) {
                for m in (0..=to_minute).rev() {
                    if self.hours & (1 << (m / 60)) != 0 && self.minutes & (1 << (m % 60)) != 0 {
                        let slot = day * 86_400 + m * 60;
                        return (slot > after).then_some(slot);
                    }
                }
            }
            day -= 1;
            to_minute = 1439;
        }
        None
    }
}

/// A UTC calendar date.
struct Date {
    month: u32,
    day: u32,
    /// 0 = Sunday.
    weekday: u32,
}

impl Date {
    /// From days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    fn from_days(z: i64) -> Self {
        let weekday = (z + 4).rem_euclid(7) as u32;
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        Self { month, day, weekday }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06 (a Sunday) 19:24:30 UTC.
    const T: i64 = 1_796_585_070;

    fn at(s: &str) -> i64 {
        humantime::parse_rfc3339(s).unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn next(expr: &str, from: &str) -> String {
        let s = Schedule::parse(expr).unwrap();
        let t = s.next_after(at(from)).unwrap();
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64)).to_string()
    }

    #[test]
    fn next_runs() {
        assert_eq!(at("2026-12-06T19:24:30Z"), T);
        assert_eq!(next("* * * * *", "2026-12-06T19:24:30Z"), "2026-12-06T19:25:00Z");
        assert_eq!(next("* * * * *", "2026-12-06T19:25:00Z"), "2026-12-06T19:26:00Z");
        assert_eq!(next("*/15 * * * *", "2026-12-06T19:24:30Z"), "2026-12-06T19:30:00Z");
        assert_eq!(next("5/20 * * * *", "2026-12-06T19:46:00Z"), "2026-12-06T20:05:00Z");
        assert_eq!(next("0 9-17/4 * * mon-fri", "2026-12-06T19:24:30Z"), "2026-12-07T09:00:00Z");
        assert_eq!(next("30 2 1,15 * *", "2026-12-06T19:24:30Z"), "2026-12-15T02:30:00Z");
        assert_eq!(next("0 0 1 jan *", "2026-12-06T19:24:30Z"), "2027-01-01T00:00:00Z");
        assert_eq!(next("0 12 29 feb *", "2026-12-06T19:24:30Z"), "2028-02-29T12:00:00Z");
        assert_eq!(next("0 0 * * 7", "2026-12-06T19:24:30Z"), "2026-12-13T00:00:00Z");
        assert_eq!(next("0 0 * * SUN", "2026-12-06T19:24:30Z"), "2026-12-13T00:00:00Z");
        // Day of month or day of week, when both are given.
        assert_eq!(next("0 0 31 * fri", "2026-12-06T19:24:30Z"), "2026-12-11T00:00:00Z");
        assert_eq!(next("@hourly", "2026-12-06T19:24:30Z"), "2026-12-06T20:00:00Z");
        assert_eq!(Schedule::parse("0 0 30 feb *").unwrap().next_after(T), None);
    }

    #[test]
    fn bad_expressions_name_the_field() {
        let err = |e: &str| Schedule::parse(e).unwrap_err().to_string();
        assert!(err("* * *").contains("has 3 field(s): use five"), "{}", err("* * *"));
        assert!(err("60 * * * *").contains("field 1 (minute) '60': 60 is out of range 0-59"));
        assert!(err("* 24 * * *").contains("field 2 (hour) '24': 24 is out of range 0-23"));
        assert!(err("* * 0 * *").contains("field 3 (day of month) '0': 0 is out of range 1-31"));
        assert!(err("* * * foo *").contains("field 4 (month) 'foo': 'foo' is not a number or a name (jan-dec)"));
        assert!(err("* * * * 8").contains("field 5 (day of week) '8': 8 is out of range 0-7"));
        assert!(err("*/0 * * * *").contains("step 0 must be 1 to 59"));
        assert!(err("5-1 * * * *").contains("range 5-1 goes backwards"));
        assert!(err("1,,2 * * * *").contains("an empty item"));
        assert!(err("@often").contains("is not a shorthand"));
    }

    #[test]
    fn a_pause_fires_the_last_missed_slot_only() {
        let s = Schedule::parse("*/10 * * * *").unwrap();
        let from = at("2026-12-06T10:00:00Z");
        assert_eq!(s.last_between(from, at("2026-12-06T10:09:59Z")), None);
        assert_eq!(s.last_between(from, at("2026-12-06T10:35:00Z")), Some(at("2026-12-06T10:30:00Z")));
        // Days away: still one slot, the newest.
        assert_eq!(s.last_between(from, at("2026-12-20T03:07:00Z")), Some(at("2026-12-20T03:00:00Z")));
        let yearly = Schedule::parse("0 0 1 1 *").unwrap();
        assert_eq!(
            yearly.last_between(at("2025-12-01T00:00:00Z"), at("2026-12-06T00:00:00Z")),
            Some(at("2026-01-01T00:00:00Z"))
        );
    }
}
