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

pub use crate::units::utc_timestamp;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis() {
        assert_eq!(csv_ms(1234), "1.234");
        assert_eq!(console_ms(52.0), "0.05");
        assert_eq!(console_ms(1_234_567.0), "1235");
    }
}
