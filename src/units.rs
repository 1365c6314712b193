//! Units people type and read: durations (`250ms`, `10s`, `1h30m`, bare number = seconds) and
//! counts with SI suffixes (`5k`, `1.5M`), UTC dates. A leaf.

use std::fmt;
use std::time::Duration;

/// Parses a duration: a sequence of `<number><unit>` with units `us`, `ms`, `s`, `m`, `h`, or a
/// bare number meaning seconds (Locust's `-t 30` convention).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; expected e.g. 30s, 250ms, 1h30m".into());
    }
    if let Ok(secs) = text.parse::<f64>() {
        return secs_to_duration(secs, text);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration {text:?}; expected e.g. 30s, 250ms, 1h30m"));
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| format!("invalid number in duration {text:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("missing unit in duration {text:?}; use us, ms, s, m or h")),
            unit => return Err(format!("unknown unit {unit:?} in duration {text:?}; use us, ms, s, m or h")),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    secs_to_duration(total, text)
}

/// The longest duration anything accepts: 100 years. Longer ones are typing slips, and a bound
/// keeps every `Instant + duration` in the program (deadlines, run ends) from overflowing.
pub const LONGEST: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Seconds as a duration, when they are a number from zero to [`LONGEST`].
pub fn duration_from_secs(secs: f64) -> Option<Duration> {
    (secs >= 0.0 && secs <= LONGEST.as_secs_f64()).then(|| Duration::from_secs_f64(secs))
}

/// Seconds computed at run time (a start offset, a random gap) as a duration, held between zero
/// and [`LONGEST`] (a negative or NaN input is zero): it never panics the way
/// `Duration::from_secs_f64` does past `u64::MAX` seconds.
pub fn capped_duration(secs: f64) -> Duration {
    if secs > 0.0 {
        duration_from_secs(secs).unwrap_or(LONGEST)
    } else {
        Duration::ZERO
    }
}

fn secs_to_duration(secs: f64, text: &str) -> Result<Duration, String> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {text:?}; must be zero or positive"));
    }
    duration_from_secs(secs).ok_or_else(|| format!("duration {text:?} is too long; the longest is 876000h (100 years)"))
}

/// Splits an SI suffix (`k`/`K`, `M`, `G`) off a number: `"5k"` → `("5", 1e3)`.
fn split_si_suffix(text: &str) -> (&str, f64) {
    match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 1e3),
        Some((i, 'M')) => (&text[..i], 1e6),
        Some((i, 'G')) => (&text[..i], 1e9),
        _ => (text, 1.0),
    }
}

/// Parses a count with an optional SI suffix: `64`, `5k`, `1.5M`.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, scale) = split_si_suffix(text);
    let value: f64 = digits.parse().map_err(|_| format!("invalid count {text:?}; expected e.g. 64, 5k, 1.5M"))?;
    let value = value * scale;
    if !value.is_finite() || value < 0.0 || value.fract() != 0.0 {
        return Err(format!("invalid count {text:?}; expected a whole non-negative number"));
    }
    Ok(value as u64)
}

/// Parses a rate per second: `10`, `2.5`, `5k`, optionally with a trailing `/s`.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let (digits, scale) = split_si_suffix(text.trim().trim_end_matches("/s"));
    let value: f64 = digits.parse().map_err(|_| format!("invalid rate {text:?}; expected e.g. 10, 2.5, 5k/s"))?;
    let value = value * scale;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("invalid rate {text:?}; must be a number greater than zero"));
    }
    Ok(value)
}

/// Prints a duration the way a person writes it: `250ms`, `5s`, `1m30s`.
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() != 0 && d < Duration::from_secs(1) {
            let us = d.as_micros();
            return if us.is_multiple_of(1000) { write!(f, "{}ms", us / 1000) } else { write!(f, "{us}us") };
        }
        if d.subsec_nanos() != 0 {
            // Milliseconds at most, without trailing zeros: 4.5s, 1.25s.
            let text = format!("{:.3}", d.as_secs_f64());
            return write!(f, "{}s", text.trim_end_matches('0').trim_end_matches('.'));
        }
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 || secs == 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

/// The UTC calendar date and time of Unix seconds: [year, month, day, hour, minute, second]
/// (civil-from-days, proleptic Gregorian).
pub fn utc_civil(unix: u64) -> [u64; 6] {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    [year as u64, month as u64, day as u64, secs / 3600, secs / 60 % 60, secs % 60]
}

/// UTC `YYYY-MM-DDTHH:MM:SSZ` from Unix seconds.
pub fn utc_timestamp(unix: u64) -> String {
    let [year, month, day, hour, minute, second] = utc_civil(unix);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_795_747_025), "2026-11-27T02:37:05Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("50us").unwrap(), Duration::from_micros(50));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit \"x\""));
        assert!(parse_duration("-5").is_err());
        assert!(parse_duration("s").is_err());
        // Finite but past any Instant: refused, not a panic (found by the scenario fuzz target).
        assert_eq!(parse_duration("876000h").unwrap(), LONGEST);
        assert!(parse_duration("876001h").unwrap_err().contains("too long"));
        assert!(parse_duration(&format!("1{}ms", "6".repeat(200))).unwrap_err().contains("too long"));
        assert!(parse_duration("1e300").unwrap_err().contains("too long"));
        assert!(parse_duration("inf").is_err());
        assert!(parse_duration("NaN").is_err());
        assert_eq!(capped_duration(1e300), LONGEST);
        assert_eq!(capped_duration(f64::INFINITY), LONGEST);
        assert_eq!(capped_duration(f64::NAN), Duration::ZERO);
        assert_eq!(capped_duration(-1.0), Duration::ZERO);
        assert_eq!(capped_duration(1.5), Duration::from_millis(1500));
    }

    #[test]
    fn counts_and_rates() {
        assert_eq!(parse_count("64").unwrap(), 64);
        assert_eq!(parse_count("5k").unwrap(), 5000);
        assert_eq!(parse_count("1.5M").unwrap(), 1_500_000);
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("abc").is_err());
        assert_eq!(parse_rate("5k/s").unwrap(), 5000.0);
        assert_eq!(parse_rate("2.5").unwrap(), 2.5);
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("1e308k").is_err(), "a rate that overflows with its suffix");
        assert!(parse_rate("inf").is_err());
    }

    #[test]
    fn human_durations() {
        assert_eq!(HumanDuration(Duration::from_millis(250)).to_string(), "250ms");
        assert_eq!(HumanDuration(Duration::from_secs(5)).to_string(), "5s");
        assert_eq!(HumanDuration(Duration::from_secs(90)).to_string(), "1m30s");
        assert_eq!(HumanDuration(Duration::from_secs(3600)).to_string(), "1h");
        assert_eq!(HumanDuration(Duration::from_millis(4500)).to_string(), "4.5s");
        assert_eq!(HumanDuration(Duration::from_millis(1250)).to_string(), "1.25s");
    }
}
