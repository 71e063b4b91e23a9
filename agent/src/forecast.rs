//! Disk-full forecast: when will a mount be full at the rate it has been filling lately?
//!
//! Pure: the caller passes every sample with its wall-clock time, nothing here reads a clock or a
//! file system. One [`DiskTrend`] per watched mount keeps the agent's own recent samples and the
//! current alert [`Level`]; [`DiskTrend::observe`] adds a sample and returns a [`Forecast`].
//!
//! # Method
//!
//! The fill rate is the slope of a least-squares line of used bytes over time, fitted to the
//! samples of the last [`ForecastSettings::window`] (the window ends at the newest sample). The
//! time to full is the free space of the newest sample (`total_bytes - used_bytes`, so "full"
//! means `used_bytes` reaches `total_bytes`; a caller that wants `df`'s notion passes
//! `used + available` as the total) divided by that rate. A fit over the whole window rather than
//! the last few samples is what keeps freed space and periodic patterns from raising a forecast:
//! a drop inside the window pulls the slope down (usually below zero), and a log-rotation
//! sawtooth whose period is well inside the window fits to a small slope. For a sawtooth of `k`
//! whole periods in the window the fitted slope is at most the ramp's rate divided by `k²`. A
//! sawtooth with a period as long as the window or longer is growth as far as the window can see;
//! the window has to be longer than the patterns to be ignored.
//!
//! There is a forecast ([`Forecast::full_in`] is `Some`) only when all of these hold:
//! - the samples in the window span at least [`ForecastSettings::min_history`] and there are at
//!   least [`MIN_SAMPLES`] of them;
//! - the newest sample's usage is strictly above [`ForecastSettings::floor_percent`] of its total;
//! - the fitted rate is positive and finite, and the time to full is at most [`HORIZON`] (a
//!   slower fill is reading noise, not a forecast);
//! - while the history does not yet reach back a whole window (the first window after a start or
//!   a restart): usage never fell from one sample to the next by more than the rise the fit
//!   claims over the whole history. A fall that large means the usage is not a steady fill, and
//!   a fit shorter than the window cannot tell the ramps of a sawtooth from growth (over a
//!   period and a half it reads most of the ramp's rate); such a history waits for the window.
//!
//! # Levels and hysteresis
//!
//! [`Level::Warning`] is raised when the time to full is strictly under
//! [`ForecastSettings::warning_within`], [`Level::Critical`] when it is strictly under
//! [`ForecastSettings::critical_within`]. Once raised, a level is kept until the time to full is
//! strictly above its threshold times [`CLEAR_FACTOR_PERCENT`]` / 100` (1.25: 24 h raises, only
//! more than 30 h clears), so a forecast that hovers around a threshold raises once and does not
//! flap. Critical drops to Warning (or straight to Clear when the forecast is past the Warning
//! clearing bound too). Without a forecast the level is Clear: a raised level is always backed by
//! a current forecast, so no alarm outlives the data behind it.
//!
//! # Restarts of the history
//!
//! The history is dropped and starts over with the new sample when:
//! - the device id or the total size changes (another file system is mounted there);
//! - the clock went backwards (the sample is older than the newest one kept);
//! - the sample is more than a window after the newest one kept (samples were missing, or the
//!   clock jumped forwards; the two cannot be told apart and both leave no usable history).
//!
//! After a restart `full_in` is `None`, and so the level is Clear, until `min_history` of new
//! samples has been collected; a fill that is still going on raises its alarm again then. A
//! smaller forward jump is taken as elapsed time: it makes the rate look slower, never faster.
//! A drop in usage does not restart the history, however large: restarting there would fit the
//! ramp of a sawtooth alone and raise exactly the forecast the window is meant to avoid. The
//! slope of the window falls instead, and the forecast comes back once the window has moved past
//! the drop if the disk is filling again.
//!
//! # Bounds and numbers
//!
//! The history holds at most a window of samples and at most [`MAX_SAMPLES`] (a very short check
//! interval then shortens the span fitted). The fit works in `f64` on deviations from the first
//! sample's time and usage (differences taken in `i128`), so byte counts up to `u64::MAX` neither
//! overflow nor lose the small differences between samples; every result is checked to be
//! finite before it becomes a [`Duration`].

use std::{
    collections::VecDeque,
    time::{Duration, SystemTime},
};

/// A raised level clears only when the time to full is strictly above its threshold times this
/// many percent (and Critical drops to Warning likewise).
pub const CLEAR_FACTOR_PERCENT: u32 = 125;

/// Hard cap on the samples kept per mount, whatever the window and check interval.
pub const MAX_SAMPLES: usize = 4096;

/// Fewest samples a fit is made from.
pub const MIN_SAMPLES: usize = 3;

/// A time to full beyond this is no forecast (one year).
pub const HORIZON: Duration = Duration::from_secs(365 * 24 * 3600);

/// Settings of the forecast (the `[disk]` keys named in [`ForecastSettings::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForecastSettings {
    /// Samples this far back from the newest are fitted (`disk.forecast_window`).
    pub window: Duration,
    /// No forecast before the samples span this long (`disk.forecast_min_history`).
    pub min_history: Duration,
    /// No forecast unless usage is strictly above this percentage (`disk.forecast_floor_percent`).
    pub floor_percent: u8,
    /// Full in less than this is WARNING (`disk.full_within_warning`).
    pub warning_within: Duration,
    /// Full in less than this is CRITICAL (`disk.full_within_critical`).
    pub critical_within: Duration,
}

impl Default for ForecastSettings {
    fn default() -> Self {
        ForecastSettings {
            window: Duration::from_secs(3600),
            min_history: Duration::from_secs(15 * 60),
            floor_percent: 50,
            warning_within: Duration::from_secs(24 * 3600),
            critical_within: Duration::from_secs(2 * 3600),
        }
    }
}

impl ForecastSettings {
    /// Checks the settings against the agent's check interval and the static disk warning
    /// threshold. An error names the offending key and says what is wrong with it.
    pub fn validate(
        &self,
        check_interval: Duration,
        warning_percent: u8,
    ) -> Result<(), (&'static str, String)> {
        let dur = |d: Duration| humantime::format_duration(d).to_string();
        if self.window <= check_interval {
            return Err((
                "disk.forecast_window",
                format!(
                    "{} must be longer than the check interval ({})",
                    dur(self.window),
                    dur(check_interval)
                ),
            ));
        }
        if self.min_history > self.window {
            return Err((
                "disk.forecast_min_history",
                format!(
                    "{} is longer than disk.forecast_window ({})",
                    dur(self.min_history),
                    dur(self.window)
                ),
            ));
        }
        let two_intervals = check_interval.saturating_mul(2);
        if self.min_history < two_intervals {
            return Err((
                "disk.forecast_min_history",
                format!(
                    "{} is shorter than two check intervals ({})",
                    dur(self.min_history),
                    dur(two_intervals)
                ),
            ));
        }
        if self.floor_percent > 100 {
            return Err((
                "disk.forecast_floor_percent",
                format!("{} is not a percentage (0 to 100)", self.floor_percent),
            ));
        }
        if self.floor_percent > warning_percent {
            return Err((
                "disk.forecast_floor_percent",
                format!(
                    "{} is above disk.warning_percent ({warning_percent})",
                    self.floor_percent
                ),
            ));
        }
        if self.critical_within.is_zero() {
            return Err((
                "disk.full_within_critical",
                "must be longer than zero".to_owned(),
            ));
        }
        if self.critical_within >= self.warning_within {
            return Err((
                "disk.full_within_critical",
                format!(
                    "{} is not shorter than disk.full_within_warning ({})",
                    dur(self.critical_within),
                    dur(self.warning_within)
                ),
            ));
        }
        Ok(())
    }
}

/// One reading of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Wall-clock time of the reading.
    pub at: SystemTime,
    /// Bytes in use.
    pub used_bytes: u64,
    /// Size of the file system in bytes.
    pub total_bytes: u64,
    /// Device id (`st_dev`) of the file system mounted there.
    pub device: u64,
}

/// Alert level of a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    /// Nothing to report.
    #[default]
    Clear,
    /// Full within `warning_within`.
    Warning,
    /// Full within `critical_within`.
    Critical,
}

/// What [`DiskTrend::observe`] concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forecast {
    /// Time until the mount is full at the fitted rate; `None` when there is no forecast (too
    /// little history, usage at or below the floor, not filling, history just restarted).
    pub full_in: Option<Duration>,
    /// The level after hysteresis; always [`Level::Clear`] when `full_in` is `None`.
    pub level: Level,
}

/// The recent samples of one mount and its current level.
#[derive(Debug, Clone, Default)]
pub struct DiskTrend {
    samples: VecDeque<Sample>,
    /// The history reaches back a whole window (or to the cap) since it last restarted.
    settled: bool,
    level: Level,
}

impl DiskTrend {
    /// No history, level Clear.
    pub fn new() -> Self {
        DiskTrend::default()
    }

    /// The level of the last forecast.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Adds `sample` (restarting the history when it cannot continue it, see the module doc) and
    /// returns the forecast from the samples of the window.
    pub fn observe(&mut self, sample: Sample, settings: &ForecastSettings) -> Forecast {
        if let Some(last) = self.samples.back() {
            let other_fs = last.device != sample.device || last.total_bytes != sample.total_bytes;
            let continues = match sample.at.duration_since(last.at) {
                Ok(step) => step <= settings.window,
                Err(_) => false, // the clock went backwards
            };
            if other_fs || !continues {
                self.samples.clear();
                self.settled = false;
            }
        }
        self.samples.push_back(sample);
        while self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
            self.settled = true;
        }
        while let Some(first) = self.samples.front() {
            match sample.at.duration_since(first.at) {
                Ok(age) if age > settings.window => {
                    self.samples.pop_front();
                    self.settled = true;
                }
                Ok(age) => {
                    self.settled |= age >= settings.window;
                    break;
                }
                Err(_) => break,
            }
        }

        let full_in = self.full_in(settings);
        self.level = next_level(self.level, full_in, settings);
        Forecast {
            full_in,
            level: self.level,
        }
    }

    /// The time to full from the samples kept, if there is a forecast.
    fn full_in(&self, settings: &ForecastSettings) -> Option<Duration> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let span = last.at.duration_since(first.at).ok()?;
        if self.samples.len() < MIN_SAMPLES
            || span < settings.min_history
            || !above_floor(last, settings.floor_percent)
        {
            return None;
        }
        let rate = fill_rate(&self.samples)?;
        if !self.settled && largest_fall(&self.samples) as f64 > rate * span.as_secs_f64() {
            // Not a steady fill: only a whole window averages a sawtooth out.
            return None;
        }
        let free = last.total_bytes.saturating_sub(last.used_bytes) as f64;
        let secs = free / rate;
        if !secs.is_finite() || secs < 0.0 || secs > HORIZON.as_secs_f64() {
            return None;
        }
        Duration::try_from_secs_f64(secs).ok()
    }
}

/// The largest fall of usage from one sample to the next.
fn largest_fall(samples: &VecDeque<Sample>) -> u64 {
    samples
        .iter()
        .zip(samples.iter().skip(1))
        .map(|(a, b)| a.used_bytes.saturating_sub(b.used_bytes))
        .max()
        .unwrap_or(0)
}

/// Whether usage is strictly above `floor_percent` of the total (false for an empty total).
fn above_floor(sample: &Sample, floor_percent: u8) -> bool {
    sample.total_bytes > 0
        && u128::from(sample.used_bytes) * 100
            > u128::from(floor_percent) * u128::from(sample.total_bytes)
}

/// Least-squares slope of used bytes over time, in bytes per second; `None` unless positive and
/// finite. Times and usages are taken relative to the first sample so the sums stay small.
fn fill_rate(samples: &VecDeque<Sample>) -> Option<f64> {
    let origin = samples.front()?;
    let points = || {
        samples.iter().map(|s| {
            let t =
                s.at.duration_since(origin.at)
                    .unwrap_or_default()
                    .as_secs_f64();
            let y = (i128::from(s.used_bytes) - i128::from(origin.used_bytes)) as f64;
            (t, y)
        })
    };
    let n = samples.len() as f64;
    let (sum_t, sum_y) = points().fold((0.0, 0.0), |(st, sy), (t, y)| (st + t, sy + y));
    let (mean_t, mean_y) = (sum_t / n, sum_y / n);
    let (sxx, sxy) = points().fold((0.0, 0.0), |(sxx, sxy), (t, y)| {
        let dt = t - mean_t;
        (sxx + dt * dt, sxy + dt * (y - mean_y))
    });
    let slope = sxy / sxx;
    (sxx > 0.0 && slope.is_finite() && slope > 0.0).then_some(slope)
}

/// `threshold` times [`CLEAR_FACTOR_PERCENT`] / 100, saturating.
fn clear_bound(threshold: Duration) -> Duration {
    (threshold / 100).saturating_mul(CLEAR_FACTOR_PERCENT)
}

/// The level after `previous` given the new forecast, with the hysteresis of the module doc.
fn next_level(previous: Level, full_in: Option<Duration>, settings: &ForecastSettings) -> Level {
    let Some(t) = full_in else {
        return Level::Clear;
    };
    if t < settings.critical_within
        || (previous == Level::Critical && t <= clear_bound(settings.critical_within))
    {
        Level::Critical
    } else if t < settings.warning_within
        || (previous != Level::Clear && t <= clear_bound(settings.warning_within))
    {
        Level::Warning
    } else {
        Level::Clear
    }
}

/// Human text for a time to full, rounded to what matters at that scale: `less than 1 min`,
/// `about 7 min` (to the minute under 15 min), `about 40 min` (to 5 min under 2 h), `about 5 h`
/// (to the hour under 2 days), `about 3 days`. For texts like `Disk / will be full in about 5 h`.
pub fn describe(full_in: Duration) -> String {
    let secs = u128::from(full_in.as_secs());
    if secs < 60 {
        return "less than 1 min".to_owned();
    }
    let minutes = (secs + 30) / 60;
    if minutes < 15 {
        return format!("about {minutes} min");
    }
    let five_minutes = (minutes + 2) / 5 * 5;
    if five_minutes < 120 {
        return format!("about {five_minutes} min");
    }
    let hours = (secs + 1800) / 3600;
    if hours < 48 {
        return format!("about {hours} h");
    }
    format!("about {} days", (secs + 43_200) / 86_400)
}

#[cfg(test)]
mod tests;
