//! The open model's start times on one worker. The global start j is due when the integral of
//! the rate reaches j, and worker w of W takes the starts j ≡ w (mod W), so the workers' starts
//! interleave evenly with no shared state; with rate stages or a named shape, the same
//! interleaving along the rate's integral.

use std::time::Duration;

use crate::config::Shape;

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
        Some(crate::units::capped_duration(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A rate so low its next start is past any clock (no run time to end it): the start is
    /// held at 100 years, not a panic.
    #[test]
    fn a_start_past_any_clock_is_held_not_a_panic() {
        let mut schedule = Schedule::new(1e-300, None, None, 0, 1);
        assert_eq!(schedule.next(), Some(Duration::ZERO));
        assert_eq!(schedule.next(), Some(crate::units::LONGEST));
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
}
