//! Load shapes for the closed model: the number of users wanted at each moment of the run.
//! Written as stages (`--stages 30s:100,1m:100,30s:0`: linear ramps to a level) or as a named
//! shape (`--shape step|spike|sine|gaussian`) over the run time, with `--users` as the peak.
//! Workers follow the curve themselves: the users wanted at time t are the global users
//! 0 .. n(t), each worker starting and stopping its own (user i lives on worker i mod W).

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
    pub users: u64,
}

impl Shape {
    /// `--stages 30s:100,1m:100,30s:0`
    pub fn parse_stages(text: &str) -> Result<Shape, String> {
        let mut stages = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (duration, users) =
                part.split_once(':').ok_or_else(|| format!("stage {part:?}: expected DURATION:USERS, e.g. 30s:100"))?;
            let duration = parse_duration(duration).map_err(|e| format!("stage {part:?}: {e}"))?;
            let users = users.trim().parse().map_err(|_| format!("stage {part:?}: {users:?} is not a user count"))?;
            stages.push(Stage { duration, users });
        }
        if stages.is_empty() {
            return Err("no stages; expected e.g. 30s:100,1m:100,30s:0".into());
        }
        Ok(Shape::Stages(stages))
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

    /// The most users the shape ever wants.
    pub fn peak(&self, users: u64) -> u64 {
        match self {
            Shape::Stages(stages) => stages.iter().map(|s| s.users).max().unwrap_or(0),
            _ => users,
        }
    }

    /// Users wanted `t` into a run of `run_time` with peak `users`.
    pub fn users_at(&self, t: Duration, run_time: Duration, users: u64) -> u64 {
        let t = t.as_secs_f64();
        let total = run_time.as_secs_f64().max(1e-9);
        let peak = users as f64;
        let wanted = match self {
            Shape::Stages(stages) => {
                let (mut from, mut start) = (0.0, 0.0);
                let mut level = stages.last().map_or(0.0, |s| s.users as f64);
                for stage in stages {
                    let length = stage.duration.as_secs_f64();
                    let to = stage.users as f64;
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
        wanted.round().max(0.0) as u64
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
        );
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
