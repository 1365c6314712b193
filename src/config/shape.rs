//! Load shapes: the number of users (closed model) or the start rate (open model) wanted at each
//! moment of the run. Written as stages (`--stages 30s:100,1m:100,30s:0`: linear ramps to a
//! level; `30s:500/s,…` for rates) or as a named shape (`--shape step|spike|sine|gaussian`) over
//! the run time, with `--users` or `--rate` as the peak.
//! Workers follow the curve themselves. Closed: the users wanted at time t are the global users
//! 0 .. n(t), each worker starting and stopping its own (user i lives on worker i mod W). Open:
//! the global start j is due when the integral of the rate reaches j, and worker w takes the
//! starts j ≡ w (mod W) (`Schedule`), so the workers interleave with no shared state.

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

/// One worker's share of an open-model schedule: the times (from the run's start) at which its
/// starts come due. The global start j is due when the rate's integral Λ(t) reaches j (start 0
/// at t = 0; at a constant rate R, start j at j / R); worker `index` of `workers` takes
/// j = index, index + workers, … Λ is summed in 1 ms steps (trapezoids), and a start inside a
/// step is placed by the step's mean rate: exact for constant rates, within a step's curvature
/// for ramps and curves. No start is due at or after `end`.
pub struct Schedule {
    shape: Option<Shape>,
    peak: f64,
    run_time: Duration,
    end: f64,
    /// The next global start this worker takes, and the distance to the one after.
    next: f64,
    stride: f64,
    /// Λ at `t`, the start of the current step.
    t: f64,
    integral: f64,
    /// Live control's multiplier of the rate; once it has been set, starts are found by
    /// stepping even at a constant rate.
    scale: f64,
    stepping: bool,
}

/// The schedule's integration step, in seconds.
const STEP: f64 = 0.001;

impl Schedule {
    /// `rate` is the constant rate, or the peak of `shape`; `end` bounds the schedule (the run
    /// time, or none).
    pub fn new(rate: f64, shape: Option<Shape>, end: Option<Duration>, index: usize, workers: usize) -> Schedule {
        let run_time = end.unwrap_or(Duration::from_secs(3600));
        Schedule {
            shape,
            peak: rate,
            run_time,
            end: end.map_or(f64::INFINITY, |e| e.as_secs_f64()),
            next: index as f64,
            stride: workers as f64,
            t: 0.0,
            integral: 0.0,
            scale: 1.0,
            stepping: false,
        }
    }

    /// Multiplies the rate from here on (live control); the starts already due keep their times.
    pub fn set_scale(&mut self, scale: f64) {
        if scale != self.scale {
            self.scale = scale.max(0.0);
            self.stepping = true;
        }
    }

    /// Picks the schedule up again at `t` seconds after a pause (live control at 0 %): the next
    /// start is due at `t`, none for the paused stretch.
    pub fn resume_at(&mut self, t: f64) {
        if t > self.t {
            self.t = t;
            self.integral = self.next;
            self.stepping = true;
        }
    }

    fn rate_at(&self, t: f64) -> f64 {
        self.scale
            * match &self.shape {
                Some(shape) => shape.level_at(t, self.run_time, self.peak),
                None => self.peak,
            }
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let at = if self.shape.is_none() && !self.stepping {
            // Constant rate: exact, with no stepping (and the state stepping would start from).
            let at = self.next / self.peak;
            self.t = at;
            self.integral = self.next;
            at
        } else {
            loop {
                if self.t >= self.end {
                    return None;
                }
                let step = STEP.min(self.end - self.t);
                let mean = (self.rate_at(self.t) + self.rate_at(self.t + step)) / 2.0;
                let gain = mean * step;
                if gain > 0.0 && self.integral + gain >= self.next {
                    break self.t + (self.next - self.integral) / mean;
                }
                self.t += step;
                self.integral += gain;
            }
        };
        if at >= self.end {
            return None;
        }
        self.next += self.stride;
        Some(Duration::from_secs_f64(at))
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

    /// Counts a schedule's starts over all workers, and checks each worker's are in order.
    fn starts(rate: f64, shape: Option<Shape>, end: f64, workers: usize) -> Vec<f64> {
        let mut all = Vec::new();
        for index in 0..workers {
            let times: Vec<f64> =
                Schedule::new(rate, shape.clone(), Some(Duration::from_secs_f64(end)), index, workers)
                    .map(|d| d.as_secs_f64())
                    .collect();
            assert!(times.windows(2).all(|w| w[0] < w[1]), "worker {index} in order");
            all.extend(times);
        }
        all.sort_by(f64::total_cmp);
        all
    }

    #[test]
    fn constant_schedule_is_exact_and_interleaved() {
        let all = starts(200.0, None, 4.0, 2);
        assert_eq!(all.len(), 800);
        assert!(all.iter().enumerate().all(|(j, t)| (t - j as f64 / 200.0).abs() < 1e-9));
    }

    #[test]
    fn ramped_schedule_follows_the_rate_integral() {
        // 0 → 1000/s over 2 s, hold 2 s, down to 0 over 2 s: Λ(6 s) = 1000 + 2000 + 1000.
        let shape = Shape::parse_stages("2s:1k/s,2s:1k/s,2s:0/s").unwrap();
        let all = starts(1000.0, Some(shape), 6.0, 2);
        assert!(all.len().abs_diff(4000) <= 2, "{}", all.len());
        // Λ(t) = 250 t² on the ramp: start j at sqrt(j / 250).
        for j in [10usize, 250, 999] {
            let expected = (j as f64 / 250.0).sqrt();
            assert!((all[j] - expected).abs() < 0.002, "start {j} at {} not {expected}", all[j]);
        }
        // The hold: one start per ms.
        let hold: Vec<_> = all.iter().filter(|t| (2.5..3.5).contains(*t)).collect();
        assert!(hold.len().abs_diff(1000) <= 1, "{}", hold.len());
    }

    #[test]
    fn a_scaled_rate_takes_effect_from_the_next_start() {
        // 100/s for the first 100 starts (1 s), then 150 % for 1 s: 150 more.
        let mut schedule = Schedule::new(100.0, None, Some(Duration::from_secs(2)), 0, 1);
        let first: Vec<f64> = schedule.by_ref().take(100).map(|d| d.as_secs_f64()).collect();
        assert!((first[99] - 0.99).abs() < 1e-9);
        schedule.set_scale(1.5);
        let rest: Vec<f64> = schedule.map(|d| d.as_secs_f64()).collect();
        assert!(rest.len().abs_diff(150) <= 1, "{}", rest.len());
        assert!((rest[0] - (0.99 + 1.0 / 150.0)).abs() < 1e-3, "{}", rest[0]);
    }

    #[test]
    fn a_paused_schedule_resumes_without_a_burst() {
        let mut schedule = Schedule::new(100.0, None, Some(Duration::from_secs(3)), 0, 1);
        assert_eq!(schedule.by_ref().take(100).count(), 100); // the first second
        schedule.resume_at(2.0); // paused from 1 s to 2 s
        let rest: Vec<f64> = schedule.map(|d| d.as_secs_f64()).collect();
        assert!((rest[0] - 2.0).abs() < 1e-9, "{}", rest[0]);
        assert!(rest.len().abs_diff(100) <= 1, "{}", rest.len());
    }

    #[test]
    fn named_shape_as_a_rate() {
        // A Gaussian of peak 1000/s over 6 s (σ = 1 s): Λ ≈ 1000 · σ · √(2π) · erf-part ≈ 2500.
        let all = starts(1000.0, Some(Shape::Gaussian), 6.0, 3);
        assert!(all.len().abs_diff(2500) <= 10, "{}", all.len());
        let middle = all.iter().filter(|t| (2.9..3.1).contains(*t)).count();
        assert!(middle.abs_diff(200) <= 2, "{middle} starts in the middle 0.2 s at ~1000/s");
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
