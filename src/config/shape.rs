//! Load shapes: the number of users (closed model) or the start rate (open model) wanted at each
//! moment of the run. Written as stages (`--stages 30s:100,1m:100,30s:0`: linear ramps to a
//! level; `30s:500/s,…` for rates) or as a named shape (`--shape step|spike|sine|gaussian`) over
//! the run time, with `--users` or `--rate` as the peak.
//! The engine's pacer follows the curve (closed model: users) or the engine's `Schedule` turns it
//! into start times (open model).

use std::time::Duration;

use crate::units::parse_duration;

#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// Linear ramps: from the previous level (0 at the start) to `users` over `duration`.
    Stages(Vec<Stage>),
    /// `users` more every `every`, from `users` up to the peak (a staircase).
    Step { every: Duration, users: u64 },
    /// A tenth of the peak, the peak for the middle tenth of the run, a tenth again.
    Spike,
    /// Between 0 and the peak with this period: peak · (1 − cos(2πt / period)) / 2.
    Sine { period: Duration },
    /// A bell over the run time: peak · exp(−(t − T/2)² / 2σ²), σ = T/6.
    Gaussian,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    /// Users, or starts per second when `rate`.
    pub level: f64,
    pub rate: bool,
}

impl Shape {
    /// `--stages 30s:100,1m:100,30s:0` (users) or `30s:500/s,1m:2k/s,30s:0/s` (start rates).
    pub fn parse_stages(text: &str) -> Result<Shape, String> {
        let mut stages: Vec<Stage> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (duration, level) = part
                .split_once(':')
                .ok_or_else(|| format!("stage {part:?}: expected DURATION:USERS or DURATION:RATE/s, e.g. 30s:100"))?;
            let duration = parse_duration(duration).map_err(|e| format!("stage {part:?}: {e}"))?;
            let level = level.trim();
            let stage = if level.ends_with("/s") {
                let rate = if level.trim_end_matches("/s").trim() == "0" {
                    0.0
                } else {
                    crate::units::parse_rate(level).map_err(|e| format!("stage {part:?}: {e}"))?
                };
                Stage { duration, level: rate, rate: true }
            } else {
                let users: u64 = level.parse().map_err(|_| {
                    format!("stage {part:?}: {level:?} is not a user count (or a rate: append /s, e.g. 500/s)")
                })?;
                Stage { duration, level: users as f64, rate: false }
            };
            if stages.first().is_some_and(|first| first.rate != stage.rate) {
                return Err(format!("stage {part:?}: all stages give users, or all give rates (N/s), not both"));
            }
            stages.push(stage);
        }
        if stages.is_empty() {
            return Err("no stages; expected e.g. 30s:100,1m:100,30s:0".into());
        }
        Ok(Shape::Stages(stages))
    }

    /// Whether the shape gives start rates (stages written as N/s) rather than users.
    pub fn is_rate(&self) -> bool {
        matches!(self, Shape::Stages(stages) if stages.iter().any(|s| s.rate))
    }

    /// `--shape gaussian`, `spike`, `sine:60s`, `step:10s:5` (every 10 s, 5 more users).
    pub fn parse_named(text: &str) -> Result<Shape, String> {
        let mut parts = text.split(':');
        let shape = match (parts.next().unwrap_or(""), parts.next(), parts.next()) {
            ("gaussian" | "bell", None, None) => Shape::Gaussian,
            ("spike", None, None) => Shape::Spike,
            ("sine", period, None) => {
                let period = period
                    .map_or(Ok(Duration::from_secs(60)), parse_duration)
                    .map_err(|e| format!("sine period: {e}"))?;
                if period.is_zero() {
                    return Err("sine period must be above 0".into());
                }
                Shape::Sine { period }
            }
            ("step", Some(every), Some(users)) => {
                let every = parse_duration(every).map_err(|e| format!("step interval: {e}"))?;
                let users = users.parse().map_err(|_| format!("step size {users:?} is not a user count"))?;
                if every.is_zero() || users == 0 {
                    return Err("step needs an interval and a size above 0, e.g. step:10s:5".into());
                }
                Shape::Step { every, users }
            }
            _ => {
                return Err(format!(
                    "unknown shape {text:?}; expected gaussian, spike, sine[:PERIOD] or step:EVERY:USERS"
                ))
            }
        };
        Ok(shape)
    }

    /// How long the shape lasts when it decides (stages); named shapes last the run time.
    pub fn duration(&self) -> Option<Duration> {
        match self {
            Shape::Stages(stages) => Some(stages.iter().map(|s| s.duration).sum()),
            _ => None,
        }
    }

    /// The highest level the shape ever wants (users or starts per second); named shapes peak
    /// at `peak`.
    pub fn peak(&self, peak: f64) -> f64 {
        match self {
            Shape::Stages(stages) => stages.iter().map(|s| s.level).fold(0.0, f64::max),
            _ => peak,
        }
    }

    /// Users wanted `t` into a run of `run_time` with peak `users`.
    pub fn users_at(&self, t: Duration, run_time: Duration, users: u64) -> u64 {
        self.level_at(t.as_secs_f64(), run_time, users as f64).round().max(0.0) as u64
    }

    /// The level (users or rate) wanted `t` seconds into a run of `run_time` with peak `peak`.
    pub fn level_at(&self, t: f64, run_time: Duration, peak: f64) -> f64 {
        let total = run_time.as_secs_f64().max(1e-9);
        let wanted = match self {
            Shape::Stages(stages) => {
                let (mut from, mut start) = (0.0, 0.0);
                let mut level = stages.last().map_or(0.0, |s| s.level);
                for stage in stages {
                    let length = stage.duration.as_secs_f64();
                    let to = stage.level;
                    if t < start + length {
                        level = from + (to - from) * ((t - start) / length.max(1e-9));
                        break;
                    }
                    from = to;
                    start += length;
                }
                level
            }
            Shape::Step { every, users: step } => {
                let steps = (t / every.as_secs_f64()).floor() + 1.0;
                (steps * *step as f64).min(peak)
            }
            Shape::Spike => {
                if (0.45 * total..0.55 * total).contains(&t) {
                    peak
                } else {
                    (peak / 10.0).max(1.0)
                }
            }
            Shape::Sine { period } => peak * (1.0 - (std::f64::consts::TAU * t / period.as_secs_f64()).cos()) / 2.0,
            Shape::Gaussian => {
                let sigma = total / 6.0;
                peak * (-(t - total / 2.0).powi(2) / (2.0 * sigma * sigma)).exp()
            }
        };
        wanted.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(shape: &Shape, secs: f64) -> u64 {
        shape.users_at(Duration::from_secs_f64(secs), Duration::from_secs(60), 100)
    }

    #[test]
    fn stages_ramp_linearly_and_hold() {
        let shape = Shape::parse_stages("10s:100, 20s:100, 10s:0").unwrap();
        assert_eq!(shape.duration(), Some(Duration::from_secs(40)));
        assert_eq!((at(&shape, 0.0), at(&shape, 5.0), at(&shape, 10.0), at(&shape, 25.0)), (0, 50, 100, 100));
        assert_eq!((at(&shape, 35.0), at(&shape, 40.0), at(&shape, 99.0)), (50, 0, 0));
        assert!(
            Shape::parse_stages("10s").is_err()
                && Shape::parse_stages("x:1").is_err()
                && Shape::parse_stages("").is_err()
                && Shape::parse_stages("10s:100,10s:5/s").is_err()
        );
        assert!(!shape.is_rate());
    }

    #[test]
    fn rate_stages() {
        let shape = Shape::parse_stages("10s:1k/s, 10s:1k/s, 10s:0/s").unwrap();
        assert!(shape.is_rate());
        assert_eq!(shape.peak(0.0), 1000.0);
        let at = |t: f64| shape.level_at(t, Duration::from_secs(30), 1000.0);
        assert_eq!((at(0.0), at(5.0), at(15.0), at(25.0), at(30.0)), (0.0, 500.0, 1000.0, 500.0, 0.0));
    }

    #[test]
    fn named_shapes() {
        let bell = Shape::parse_named("gaussian").unwrap();
        assert_eq!(at(&bell, 30.0), 100);
        assert_eq!(at(&bell, 20.0), 61); // exp(-0.5)
        assert_eq!(at(&bell, 0.0), 1); // exp(-4.5)
        let step = Shape::parse_named("step:10s:25").unwrap();
        assert_eq!((at(&step, 0.0), at(&step, 10.0), at(&step, 35.0), at(&step, 59.0)), (25, 50, 100, 100));
        let spike = Shape::parse_named("spike").unwrap();
        assert_eq!((at(&spike, 10.0), at(&spike, 30.0), at(&spike, 40.0)), (10, 100, 10));
        let sine = Shape::parse_named("sine:20s").unwrap();
        assert_eq!((at(&sine, 0.0), at(&sine, 5.0), at(&sine, 10.0)), (0, 50, 100));
        assert!(Shape::parse_named("square").is_err() && Shape::parse_named("step:0s:1").is_err());
    }
}
