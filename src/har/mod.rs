//! Capture and replay: a browser's or REST client's recording (HAR 1.2) turned into a scenario
//! file that runs against a live server. `read` keeps the page's own requests, `correlate` finds
//! the values later requests send that earlier responses produced, `write` emits TOML that
//! reads like a hand-written scenario (named steps, grouped names, captures and checks, and
//! comments saying where each value came from). It imports only `units` and `http`'s form
//! encoding: it turns bytes into text; the scenario compiler does the rest.

mod correlate;
mod read;
mod write;

use std::time::Duration;

pub use read::{iso_ms, split_url};

/// Think time between the recorded requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ThinkTime {
    /// The gaps between the recorded requests, as `sleep` steps.
    #[default]
    Recorded,
    None,
    /// The same pause between every two requests.
    Fixed(Duration),
}

impl std::str::FromStr for ThinkTime {
    type Err = String;

    fn from_str(text: &str) -> Result<ThinkTime, String> {
        match text {
            "recorded" => Ok(ThinkTime::Recorded),
            "none" => Ok(ThinkTime::None),
            other => crate::units::parse_duration(other)
                .map(ThinkTime::Fixed)
                .map_err(|e| format!("expected recorded, none or a duration ({e})")),
        }
    }
}

/// How a recording is converted.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Hosts (`host` or `host:port`) whose requests are kept; empty: the page's own.
    pub include_hosts: Vec<String>,
    /// Requests whose URL matches are left out.
    pub exclude: Option<regex::Regex>,
    /// Keep images, fonts, CSS, scripts and media.
    pub keep_static: bool,
    pub think_time: ThinkTime,
    /// The recording's name, for the file's opening comment.
    pub source: String,
}

/// What is wrong with a recording, at its line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for HarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for HarError {}

/// A converted recording: the scenario's text and what the conversion did.
#[derive(Debug)]
pub struct Conversion {
    pub text: String,
    pub entries: usize,
    pub steps: usize,
    pub correlations: usize,
}

/// Converts a recording's bytes into a scenario file's text.
pub fn convert(bytes: &[u8], options: &Options) -> Result<Conversion, HarError> {
    let (exchanges, dropped) = read::read(bytes, options)?;
    if exchanges.is_empty() {
        return Err(HarError {
            line: 1,
            col: 1,
            message: format!(
                "no request is left to replay ({} static, {} on other hosts, {} excluded, {} not http, {} other \
                 methods); see --keep-static and --include-host",
                dropped.static_resources,
                dropped.other_hosts,
                dropped.excluded,
                dropped.not_http,
                dropped.other_methods
            ),
        });
    }
    let captures = correlate::correlate(&exchanges);
    let entries = exchanges.len()
        + dropped.static_resources
        + dropped.other_hosts
        + dropped.excluded
        + dropped.not_http
        + dropped.other_methods;
    let text = write::scenario(&exchanges, &captures, &dropped, options)?;
    Ok(Conversion { text, entries, steps: exchanges.len(), correlations: captures.len() })
}

/// What kind of dynamic value a path segment is, as its name shows it (`[id]`, `[uuid]`,
/// `[hex]`, `[token]`); `None` for a word.
pub fn dynamic_kind(segment: &str) -> Option<&'static str> {
    let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
    if !segment.is_empty() && segment.chars().all(|c| c.is_ascii_digit()) {
        return Some("[id]");
    }
    let parts: Vec<&str> = segment.split('-').collect();
    if parts.len() == 5 && [8, 4, 4, 4, 12].iter().zip(&parts).all(|(n, p)| p.len() == *n && hex(p)) {
        return Some("[uuid]");
    }
    if segment.len() >= 16 && hex(segment) {
        return Some("[hex]");
    }
    let tokenish = segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let digits = segment.chars().filter(char::is_ascii_digit).count();
    if segment.len() >= 20 && tokenish && digits > 0 && segment.chars().any(|c| c.is_ascii_alphabetic()) {
        return Some("[token]");
    }
    None
}

/// Whether a path segment is a dynamic value.
pub fn dynamic(segment: &str) -> bool {
    dynamic_kind(segment).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_segments_are_named_by_kind() {
        assert_eq!(dynamic_kind("1234"), Some("[id]"));
        assert_eq!(dynamic_kind("3f2b8c1e-9a7d-4c2e-8f1a-0b9c8d7e6f5a"), Some("[uuid]"));
        assert_eq!(dynamic_kind("deadbeefdeadbeef00"), Some("[hex]"));
        assert_eq!(dynamic_kind("eyJhbGciOiJIUzI1NiJ9_abc123"), Some("[token]"));
        assert_eq!(dynamic_kind("comments"), None);
        assert_eq!(dynamic_kind("v2"), None);
        assert_eq!(dynamic_kind("a-very-long-slug-with-words"), None);
    }

    #[test]
    fn think_time_parses() {
        assert_eq!("recorded".parse(), Ok(ThinkTime::Recorded));
        assert_eq!("none".parse(), Ok(ThinkTime::None));
        assert_eq!("1.5s".parse(), Ok(ThinkTime::Fixed(Duration::from_millis(1500))));
        assert!("soon".parse::<ThinkTime>().is_err());
    }
}
