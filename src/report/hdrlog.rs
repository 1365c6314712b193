//! `--hdr-log`: an HdrHistogram interval log, the format of the Java library's
//! `HistogramLogWriter` (read by `HistogramLogProcessor`, HistogramLogAnalyzer, hdr-plot and
//! the hdrhistogram crate's `IntervalLogIterator`). One line per reporting interval (a second)
//! for every endpoint together (untagged), one per endpoint that had requests in it
//! (`Tag=GET:/path`), and in the open model the service times (`Tag=service` and
//! `Tag=service:GET:/path`) beside the latency from the intended start. Histograms are V2
//! compressed (deflate), base64; values are microseconds (the `Interval_Max` column is in
//! milliseconds: `MaxValueDivisor` 1000). Interval start times count from `BaseTime`, the run's
//! start. The log keeps every interval, also across a statistics reset.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::config::Plan;
use crate::stats::EndpointStats;
use crate::units::utc_timestamp;

/// Max values are written in ms.
const MAX_VALUE_DIVISOR: f64 = 1000.0;

pub struct HdrLog {
    out: BufWriter<File>,
    serializer: V2DeflateSerializer,
    bytes: Vec<u8>,
    text: String,
    /// Each endpoint's tag, in plan order.
    tags: Vec<String>,
    open: bool,
}

/// An endpoint's tag: `METHOD:name` with what a tag may not hold (space, comma, CR, LF) as `_`.
pub fn tag(method: &str, name: &str) -> String {
    format!("{method}:{name}").replace([' ', ',', '\r', '\n'], "_")
}

impl HdrLog {
    /// Creates the file and writes the headers: what it is, StartTime and BaseTime (the run's
    /// start), the tags' endpoints, the legend.
    pub fn create(path: &Path, plan: &Plan, start_unix: f64) -> Result<HdrLog> {
        let file = File::create(path).with_context(|| format!("--hdr-log: cannot write {}", path.display()))?;
        let mut out = BufWriter::new(file);
        let tags: Vec<String> = plan.endpoints.iter().map(|e| tag(&e.method, &e.name)).collect();
        let open = plan.rate.is_some();
        writeln!(out, "#[swarmer {} interval log of {}]", env!("CARGO_PKG_VERSION"), plan.origin.trim())?;
        writeln!(out, "#[Histogram log format version 1.3]")?;
        let start = utc_timestamp(start_unix as u64);
        writeln!(out, "#[StartTime: {start_unix:.3} (seconds since epoch), {start}]")?;
        writeln!(out, "#[BaseTime: {start_unix:.3} (seconds since epoch)]")?;
        writeln!(out, "#[MaxValueDivisor: {MAX_VALUE_DIVISOR:.3}]")?;
        let untagged = match open {
            true => "response times from each task's intended start, all endpoints",
            false => "response times, all endpoints",
        };
        writeln!(out, "#[Values in microseconds. Untagged: {untagged}]")?;
        if open {
            writeln!(out, "#[Tag=service: service times (from the actual send), all endpoints]")?;
        }
        for (tag, endpoint) in tags.iter().zip(&plan.endpoints) {
            writeln!(out, "#[Tag={tag}: {} {}]", endpoint.method, endpoint.name)?;
        }
        writeln!(out, "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"")?;
        out.flush()?;
        Ok(HdrLog { out, serializer: V2DeflateSerializer::new(), bytes: Vec::new(), text: String::new(), tags, open })
    }

    /// Writes the interval that began `begin_secs` into the run and lasted `secs`: every
    /// endpoint together, then each endpoint with requests in it.
    pub fn write(
        &mut self,
        begin_secs: f64,
        secs: f64,
        endpoints: &[EndpointStats],
        all: &EndpointStats,
    ) -> Result<()> {
        self.line(None, begin_secs, secs, &all.hist)?;
        if self.open {
            if let Some(service) = &all.service {
                self.line(Some("service"), begin_secs, secs, service)?;
            }
        }
        for (index, stats) in endpoints.iter().enumerate().filter(|(_, s)| s.count > 0) {
            let tag = std::mem::take(&mut self.tags[index]);
            self.line(Some(&tag), begin_secs, secs, &stats.hist)?;
            if let Some(service) = stats.service.as_ref().filter(|_| self.open) {
                self.line(Some(&format!("service:{tag}")), begin_secs, secs, service)?;
            }
            self.tags[index] = tag;
        }
        self.out.flush().context("--hdr-log: cannot write")
    }

    fn line(&mut self, tag: Option<&str>, begin_secs: f64, secs: f64, hist: &Histogram<u64>) -> Result<()> {
        self.bytes.clear();
        self.text.clear();
        self.serializer.serialize(hist, &mut self.bytes).map_err(|e| anyhow::anyhow!("--hdr-log: {e:?}"))?;
        base64::engine::general_purpose::STANDARD.encode_string(&self.bytes, &mut self.text);
        if let Some(tag) = tag {
            write!(self.out, "Tag={tag},")?;
        }
        let max = hist.max() as f64 / MAX_VALUE_DIVISOR;
        writeln!(self.out, "{begin_secs:.3},{secs:.3},{max:.3},{}", self.text)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn tags_hold_no_separator() {
        assert_eq!(tag("GET", "/a b,c"), "GET:/a_b_c");
    }

    #[test]
    fn lines_read_back_with_the_crates_reader() {
        let dir = std::env::temp_dir().join(format!("swarmer-hdrlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.hlog");
        let mut plan = Plan::empty(vec![None], std::time::Duration::from_secs(1));
        plan.endpoints.push(crate::config::Endpoint { method: "GET".into(), name: "/a b".into() });
        let mut log = HdrLog::create(&path, &plan, 1_800_000_000.5).unwrap();
        let mut stats = EndpointStats::new(1_000_000);
        for us in [100, 200, 300, 40_000] {
            stats.record(us, 1);
        }
        log.write(0.0, 1.0, std::slice::from_ref(&stats), &stats).unwrap();
        log.write(1.0, 0.25, &[EndpointStats::new(1_000_000)], &EndpointStats::new(1_000_000)).unwrap();
        drop(log);
        let text = std::fs::read(&path).unwrap();
        let mut intervals = Vec::new();
        for entry in IntervalLogIterator::new(&text) {
            match entry.unwrap() {
                LogEntry::StartTime(t) | LogEntry::BaseTime(t) => assert_eq!(t.as_millis(), 1_800_000_000_500),
                LogEntry::Interval(i) => intervals.push(i),
            }
        }
        assert_eq!(intervals.len(), 3, "untagged, tagged, then the empty second untagged");
        assert_eq!(intervals[1].tag().unwrap().as_str(), "GET:/a_b");
        assert_eq!(intervals[2].start_timestamp().as_millis(), 1000);
        assert_eq!(intervals[2].duration().as_millis(), 250);
        let bytes = base64::engine::general_purpose::STANDARD.decode(intervals[0].encoded_histogram()).unwrap();
        let read: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice()).unwrap();
        assert_eq!(read.len(), 4);
        assert_eq!(read.value_at_quantile(0.5), stats.hist.value_at_quantile(0.5));
        assert!((intervals[0].max() - 40.0).abs() < 0.1, "{}", intervals[0].max());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
