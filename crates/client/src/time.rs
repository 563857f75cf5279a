//! Wall-clock timestamps of received messages and their text forms (ISO 8601,
//! Unix, mosquitto's `tst`, strftime fields). Always UTC: no time zone
//! database is consulted, so output is the same on every machine.

use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time as seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

/// Calendar fields of a [`Timestamp`] in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Day of the year, 1..=366.
    pub yday: u32,
    /// Day of the week, 0 = Sunday.
    pub wday: u32,
}

const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl Timestamp {
    pub fn now() -> Timestamp {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            },
            // A clock before 1970 is a misconfigured machine; print the epoch.
            Err(_) => Timestamp { secs: 0, nanos: 0 },
        }
    }

    pub fn civil(&self) -> Civil {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let jan1 = days_from_civil(year, 1, 1);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            yday: (days - jan1 + 1) as u32,
            // 1970-01-01 was a Thursday.
            wday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// `2026-11-22T00:27:38+0000`, as mosquitto's `%I`.
    pub fn iso8601(&self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+0000",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// `2026-11-22T00:27:38.861506Z` (RFC 3339, microseconds).
    pub fn rfc3339_micros(&self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            c.year,
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second,
            self.nanos / 1000
        )
    }

    /// `2026-11-22T00:27:38.861506Z+0000`: the `tst` field of mosquitto's
    /// JSON output, kept byte-for-byte so tools that parse it still work.
    pub fn mosquitto_tst(&self) -> String {
        format!("{}+0000", self.rfc3339_micros())
    }

    /// `1795307258.861623399`, as mosquitto's `%U`.
    pub fn unix(&self) -> String {
        format!("{}.{:09}", self.secs, self.nanos)
    }

    /// One strftime conversion (the character after `@` in `-F`); `None`
    /// for a character this does not know.
    pub fn strftime(&self, conv: char) -> Option<String> {
        let c = self.civil();
        Some(match conv {
            'Y' => format!("{:04}", c.year),
            'y' => format!("{:02}", c.year.rem_euclid(100)),
            'C' => format!("{:02}", c.year.div_euclid(100)),
            'm' => format!("{:02}", c.month),
            'd' => format!("{:02}", c.day),
            'e' => format!("{:2}", c.day),
            'j' => format!("{:03}", c.yday),
            'H' => format!("{:02}", c.hour),
            'I' => format!("{:02}", (c.hour + 11) % 12 + 1),
            'p' => (if c.hour < 12 { "AM" } else { "PM" }).to_owned(),
            'M' => format!("{:02}", c.minute),
            'S' => format!("{:02}", c.second),
            's' => self.secs.to_string(),
            'N' => format!("{:09}", self.nanos),
            'F' => format!("{:04}-{:02}-{:02}", c.year, c.month, c.day),
            'T' => format!("{:02}:{:02}:{:02}", c.hour, c.minute, c.second),
            'a' => DAY_NAMES[c.wday as usize][..3].to_owned(),
            'A' => DAY_NAMES[c.wday as usize].to_owned(),
            'b' | 'h' => MONTH_NAMES[(c.month - 1) as usize][..3].to_owned(),
            'B' => MONTH_NAMES[(c.month - 1) as usize].to_owned(),
            'u' => (if c.wday == 0 { 7 } else { c.wday }).to_string(),
            'w' => c.wday.to_string(),
            'z' => "+0000".to_owned(),
            'Z' => "UTC".to_owned(),
            'n' => "\n".to_owned(),
            't' => "\t".to_owned(),
            _ => return None,
        })
    }
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01; inverse of the above.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        // 2026-11-22T00:27:38.861506Z, a Sunday, day 326.
        let t = Timestamp {
            secs: 1_795_307_258,
            nanos: 861_506_123,
        };
        assert_eq!(t.iso8601(), "2026-11-22T00:27:38+0000");
        assert_eq!(t.rfc3339_micros(), "2026-11-22T00:27:38.861506Z");
        assert_eq!(t.mosquitto_tst(), "2026-11-22T00:27:38.861506Z+0000");
        assert_eq!(t.unix(), "1795307258.861506123");
        assert_eq!(t.strftime('a').as_deref(), Some("Sun"));
        assert_eq!(t.strftime('j').as_deref(), Some("326"));
        assert_eq!(t.strftime('B').as_deref(), Some("November"));
        assert_eq!(t.strftime('I').as_deref(), Some("12"));
        assert_eq!(t.strftime('q'), None);
        let epoch = Timestamp { secs: 0, nanos: 0 };
        assert_eq!(epoch.iso8601(), "1970-01-01T00:00:00+0000");
        assert_eq!(epoch.strftime('A').as_deref(), Some("Thursday"));
        // A leap day.
        let leap = Timestamp {
            secs: 951_782_400,
            nanos: 0,
        };
        assert_eq!(leap.strftime('F').as_deref(), Some("2000-02-29"));
        assert_eq!(leap.strftime('j').as_deref(), Some("060"));
    }

    #[test]
    fn days_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
