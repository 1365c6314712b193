//! Number and time formatting shared by the console and CSV writers.

/// Percentiles reported everywhere, as Locust's `PERCENTILES_TO_REPORT`.
pub const PERCENTILES: [f64; 11] = [0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0];

/// Column titles of `PERCENTILES` as Locust writes them.
pub const PERCENTILE_TITLES: [&str; 11] =
    ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"];

/// Milliseconds for the CSV files: µs resolution, three decimals.
pub fn csv_ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// Mean milliseconds for the CSV files.
pub fn csv_ms_f(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

/// Milliseconds for a 7-wide console column: two decimals below one second (sub-millisecond
/// services stay readable), whole milliseconds above.
pub fn console_ms(us: f64) -> String {
    let ms = us / 1000.0;
    if ms < 1000.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.0}")
    }
}

/// UTC `YYYY-MM-DDTHH:MM:SSZ` from Unix seconds (civil-from-days, proleptic Gregorian).
pub fn utc_timestamp(unix: u64) -> String {
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
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
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
    fn millis() {
        assert_eq!(csv_ms(1234), "1.234");
        assert_eq!(console_ms(52.0), "0.05");
        assert_eq!(console_ms(1_234_567.0), "1235");
    }
}
