//! Unit tests of the forecast with plain series: steady fill, bursts, log-rotation sawtooth,
//! space freed, too little history, hysteresis, clock jumps, a replaced mount, gaps, huge counts
//! and random series that must never panic.

use std::time::UNIX_EPOCH;

use super::*;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const EIB: u64 = 1 << 60;
const STEP: u64 = 30;
const HOUR: u64 = 3600;
/// No forecast, no alarm.
const NOTHING: Forecast = Forecast {
    full_in: None,
    level: Level::Clear,
};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn sample(secs: u64, used_bytes: u64, total_bytes: u64) -> Sample {
    Sample {
        at: at(secs),
        used_bytes,
        total_bytes,
        device: 7,
    }
}

fn hours(h: f64) -> Duration {
    Duration::from_secs_f64(h * 3600.0)
}

/// Usage at `secs` of a steady fill from `start` bytes at `per_hour` bytes an hour.
fn steady(start: u64, per_hour: u64, secs: u64) -> u64 {
    start + (u128::from(per_hour) * u128::from(secs) / u128::from(HOUR)) as u64
}

/// Feeds a sample every [`STEP`] seconds from `from` (inclusive) to `to` (exclusive), with usage
/// `used(secs)` on a disk of `total` bytes, and returns the forecasts.
fn feed(
    trend: &mut DiskTrend,
    from: u64,
    to: u64,
    total: u64,
    used: impl Fn(u64) -> u64,
) -> Vec<Forecast> {
    let s = ForecastSettings::default();
    (from..to)
        .step_by(STEP as usize)
        .map(|t| trend.observe(sample(t, used(t), total), &s))
        .collect()
}

fn assert_near(actual: Duration, expected: Duration) {
    let (a, e) = (actual.as_secs_f64(), expected.as_secs_f64());
    assert!(
        (a - e).abs() <= e * 0.02,
        "{actual:?} is not about {expected:?}"
    );
}

#[test]
fn defaults_are_valid() {
    let s = ForecastSettings::default();
    assert_eq!(s.window, Duration::from_secs(3600));
    assert_eq!(s.min_history, Duration::from_secs(900));
    assert_eq!(s.floor_percent, 50);
    assert_eq!(s.warning_within, Duration::from_secs(24 * 3600));
    assert_eq!(s.critical_within, Duration::from_secs(2 * 3600));
    assert_eq!(s.validate(Duration::from_secs(30), 80), Ok(()));
    assert_eq!(s.validate(Duration::from_secs(60), 80), Ok(()));
}

#[test]
fn validate_names_the_key() {
    let d = ForecastSettings::default();
    let minute = Duration::from_secs(60);
    let key = |s: ForecastSettings, interval: Duration, warning: u8| {
        let (key, message) = s.validate(interval, warning).unwrap_err();
        assert!(!message.is_empty());
        key
    };
    let window = |w| ForecastSettings {
        window: Duration::from_secs(w),
        min_history: Duration::from_secs(120),
        ..d
    };
    assert_eq!(key(window(60), minute, 80), "disk.forecast_window");
    assert_eq!(key(window(30), minute, 80), "disk.forecast_window");
    assert_eq!(window(180).validate(minute, 80), Ok(()));
    let history = |h| ForecastSettings {
        min_history: Duration::from_secs(h),
        ..d
    };
    assert_eq!(key(history(3601), minute, 80), "disk.forecast_min_history");
    assert_eq!(key(history(119), minute, 80), "disk.forecast_min_history");
    assert_eq!(history(120).validate(minute, 80), Ok(()));
    assert_eq!(history(3600).validate(minute, 80), Ok(()));
    let floor = |f| ForecastSettings {
        floor_percent: f,
        ..d
    };
    assert_eq!(key(floor(81), minute, 80), "disk.forecast_floor_percent");
    assert_eq!(key(floor(101), minute, 101), "disk.forecast_floor_percent");
    assert_eq!(floor(80).validate(minute, 80), Ok(()));
    let critical = |c| ForecastSettings {
        critical_within: Duration::from_secs(c),
        ..d
    };
    assert_eq!(key(critical(0), minute, 80), "disk.full_within_critical");
    assert_eq!(
        key(critical(24 * 3600), minute, 80),
        "disk.full_within_critical"
    );
    let (_, message) = critical(25 * 3600).validate(minute, 80).unwrap_err();
    assert_eq!(
        message,
        "1day 1h is not shorter than disk.full_within_warning (1day)"
    );
}

#[test]
fn steady_slow_fill_forecasts_without_alarm() {
    // 1 GiB/h on a 100 GiB disk from 60 GiB: full in about 39 h.
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, HOUR + 1, 100 * GIB, |t| {
        steady(60 * GIB, GIB, t)
    });
    let last = out.last().unwrap();
    assert_near(last.full_in.unwrap(), hours(39.0));
    assert!(out.iter().all(|f| f.level == Level::Clear));
}

#[test]
fn steady_fill_raises_warning_after_min_history() {
    // 2 GiB/h from 60 GiB: about 19.75 h once 15 min have been seen.
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, 20 * 60, 100 * GIB, |t| {
        steady(60 * GIB, 2 * GIB, t)
    });
    for (i, f) in out.iter().enumerate() {
        if (i as u64) * STEP < 15 * 60 {
            assert_eq!(*f, NOTHING, "sample {i}");
        } else {
            assert_eq!(f.level, Level::Warning, "sample {i}");
        }
    }
    assert_near(out[30].full_in.unwrap(), hours(19.75));
    assert_eq!(trend.level(), Level::Warning);
}

#[test]
fn fast_fill_raises_critical() {
    // 30 GiB/h from 60 GiB: after 15 min 67.5 GiB used, 32.5 GiB free, 65 min to full.
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, 15 * 60 + 1, 100 * GIB, |t| {
        steady(60 * GIB, 30 * GIB, t)
    });
    let last = out.last().unwrap();
    assert_eq!(last.level, Level::Critical);
    assert_near(last.full_in.unwrap(), Duration::from_secs(65 * 60));
    assert_eq!(describe(last.full_in.unwrap()), "about 65 min");
}

#[test]
fn too_little_history_gives_no_forecast() {
    let s = ForecastSettings::default();
    let mut trend = DiskTrend::new();
    // Two samples a long way apart are still too few to fit.
    assert_eq!(
        trend.observe(sample(0, 90 * GIB, 100 * GIB), &s).full_in,
        None
    );
    assert_eq!(
        trend.observe(sample(1800, 95 * GIB, 100 * GIB), &s).full_in,
        None
    );
    // A fast fill that has been seen for less than 15 min.
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, 15 * 60, 100 * GIB, |t| {
        steady(80 * GIB, 50 * GIB, t)
    });
    assert!(
        out.iter()
            .all(|f| f.full_in.is_none() && f.level == Level::Clear)
    );
}

#[test]
fn at_or_below_the_floor_gives_no_forecast() {
    // 40 GiB used of 100, filling at 50 GiB/h: the static thresholds are not near; no forecast.
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, HOUR, 100 * GIB, |t| {
        steady(10 * GIB, 30 * GIB, t).min(40 * GIB)
    });
    assert!(
        out.iter()
            .all(|f| f.full_in.is_none() && f.level == Level::Clear)
    );
    // Exactly at the floor is not above it; one byte more is.
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, 20 * 60 + 1, 100 * GIB, |t| {
        steady(40 * GIB, 30 * GIB, t)
    });
    assert_eq!(out.last().unwrap().full_in, None);
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, 20 * 60 + 1, 100 * GIB, |t| {
        steady(40 * GIB, 30 * GIB, t) + 1
    });
    assert!(out.last().unwrap().full_in.is_some());
}

#[test]
fn burst_then_flat_clears_once_the_window_passes_it() {
    // Flat at 60 GiB for 30 min, 20 GiB written within one interval, then flat again.
    let burst = 30 * 60;
    let used = |t: u64| if t < burst { 60 * GIB } else { 80 * GIB };
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, 4 * HOUR, 100 * GIB, used);
    let index = |t: u64| (t / STEP) as usize;
    assert!(out[..index(burst)].iter().all(|f| f.full_in.is_none()));
    // The burst shows in the fit for a while ...
    assert!(out[index(burst)..].iter().any(|f| f.full_in.is_some()));
    // ... and is gone once the window has moved past it, for good.
    let past = index(burst + HOUR) + 1;
    assert!(out[past..].iter().all(|f| *f == NOTHING));
    // The forecast only gets longer after the burst: the slope decays as the window slides.
    let lengths: Vec<Duration> = out[index(burst)..past]
        .iter()
        .filter_map(|f| f.full_in)
        .collect();
    let peak = lengths
        .iter()
        .enumerate()
        .min_by_key(|(_, d)| **d)
        .map(|(i, _)| i)
        .unwrap();
    assert!(lengths[peak..].windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn log_rotation_sawtooth_raises_nothing() {
    // 85 GiB used of 100; logs grow 2 GiB in 10 min and are rotated away, for 12 hours. A fit
    // of the last 15 min alone would say 12 GiB/h, full in about 1 h.
    let used = |t: u64| 85 * GIB + 2 * GIB * (t % 600) / 600;
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, 12 * HOUR, 100 * GIB, used);
    for (i, f) in out.iter().enumerate() {
        assert_eq!(f.level, Level::Clear, "sample {i}: {f:?}");
        if let Some(d) = f.full_in {
            assert!(d > hours(30.0), "sample {i}: {f:?}");
        }
    }
    // The same with a slow long-run growth of 0.1 GiB/h on top: still nothing.
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, 12 * HOUR, 100 * GIB, |t| {
        used(t) + GIB * t / (10 * HOUR)
    });
    assert!(out.iter().all(|f| f.level == Level::Clear));
}

#[test]
fn usage_going_down_gives_no_forecast() {
    // A cleanup freeing 5 GiB/h from 90 GiB.
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, 2 * HOUR, 100 * GIB, |t| {
        90 * GIB - 5 * GIB * t / HOUR
    });
    assert!(
        out.iter()
            .all(|f| f.full_in.is_none() && f.level == Level::Clear)
    );
}

#[test]
fn space_freed_after_a_fill_clears_the_alarm() {
    // Filling at 2 GiB/h from 80 GiB (WARNING), then 20 GiB deleted and no more writes.
    let freed = HOUR;
    let used = |t: u64| {
        if t < freed {
            steady(80 * GIB, 2 * GIB, t)
        } else {
            62 * GIB
        }
    };
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, 3 * HOUR, 100 * GIB, used);
    let index = |t: u64| (t / STEP) as usize;
    assert_eq!(out[index(freed) - 1].level, Level::Warning);
    for (i, f) in out[index(freed)..].iter().enumerate() {
        assert_eq!(
            f.level,
            Level::Clear,
            "{i} samples after the cleanup: {f:?}"
        );
    }
    assert!(out[index(freed) + 2..].iter().all(|f| f.full_in.is_none()));
}

#[test]
fn hysteresis_levels() {
    let s = ForecastSettings::default();
    let step = |level: &mut Level, h: f64| {
        *level = next_level(*level, Some(hours(h)), &s);
        *level
    };
    let mut level = Level::Clear;
    assert_eq!(
        step(&mut level, 24.0),
        Level::Clear,
        "not strictly under 24 h"
    );
    assert_eq!(step(&mut level, 23.9), Level::Warning);
    assert_eq!(step(&mut level, 25.0), Level::Warning);
    assert_eq!(
        step(&mut level, 30.0),
        Level::Warning,
        "not strictly above 30 h"
    );
    assert_eq!(step(&mut level, 30.01), Level::Clear);
    assert_eq!(step(&mut level, 25.0), Level::Clear);
    assert_eq!(step(&mut level, 1.99), Level::Critical);
    assert_eq!(step(&mut level, 2.4), Level::Critical);
    assert_eq!(step(&mut level, 2.5), Level::Critical);
    assert_eq!(step(&mut level, 2.51), Level::Warning);
    assert_eq!(step(&mut level, 2.2), Level::Warning);
    assert_eq!(step(&mut level, 1.0), Level::Critical);
    assert_eq!(step(&mut level, 31.0), Level::Clear, "straight to Clear");
    assert_eq!(step(&mut level, 0.5), Level::Critical);
    assert_eq!(step(&mut level, 29.0), Level::Warning);
    assert_eq!(next_level(Level::Critical, None, &s), Level::Clear);
    assert_eq!(next_level(Level::Warning, None, &s), Level::Clear);
    assert_eq!(clear_bound(s.warning_within), hours(30.0));
    assert_eq!(clear_bound(Duration::MAX), Duration::MAX);
}

/// A tiny linear congruential generator, enough for test series.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn noisy_fill_around_the_threshold_raises_once() {
    // 2 GiB/h from 50.5 GiB of 100 with ±64 MiB of noise: the raw forecast wanders from about
    // 24.5 h down to 22.5 h, crossing 24 h several times; the level changes once.
    let mut rng = Lcg(42);
    let s = ForecastSettings::default();
    let mut trend = DiskTrend::new();
    let mut forecasts = Vec::new();
    for t in (0..2 * HOUR + 45 * 60).step_by(STEP as usize) {
        let used = steady(50 * GIB + GIB / 2, 2 * GIB, t) + rng.below(128 * MIB) - 64 * MIB;
        forecasts.push(trend.observe(sample(t, used, 100 * GIB), &s));
    }
    let day = Duration::from_secs(24 * 3600);
    let raw: Vec<bool> = forecasts
        .iter()
        .filter_map(|f| f.full_in)
        .map(|d| d < day)
        .collect();
    // Noise is no sawtooth: the forecast starts after 15 min, not after the window.
    assert!(forecasts[30].full_in.is_some());
    let crossings = raw.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        crossings >= 3,
        "the series should hover (crossings: {crossings})"
    );
    let changes = forecasts
        .windows(2)
        .filter(|w| w[0].level != w[1].level)
        .count();
    assert_eq!(changes, 1);
    assert_eq!(trend.level(), Level::Warning);
}

#[test]
fn clock_going_backwards_restarts_the_history() {
    let s = ForecastSettings::default();
    let fill = |t: u64| steady(60 * GIB, 2 * GIB, t);
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, HOUR, 100 * GIB, fill);
    assert_eq!(out.last().unwrap().level, Level::Warning);
    // Ten minutes back: no forecast and no alarm until 15 min of new history.
    let back = HOUR - 10 * 60;
    let f = trend.observe(sample(back, fill(HOUR), 100 * GIB), &s);
    assert_eq!(f, NOTHING);
    assert_eq!(trend.samples.len(), 1);
    let out = feed(&mut trend, back + STEP, back + 20 * 60, 100 * GIB, |t| {
        fill(t + 10 * 60)
    });
    let ready = (15 * 60 / STEP - 1) as usize;
    assert!(out[..ready].iter().all(|f| f.full_in.is_none()));
    assert!(out[ready..].iter().all(|f| f.level == Level::Warning));
}

#[test]
fn gaps_and_forward_jumps() {
    let s = ForecastSettings::default();
    let fill = |t: u64| steady(60 * GIB, 2 * GIB, t);
    // Samples missing for 20 min (or the clock 20 min ahead): the history goes on.
    let mut trend = DiskTrend::new();
    feed(&mut trend, 0, HOUR, 100 * GIB, fill);
    let f = trend.observe(sample(HOUR + 20 * 60, fill(HOUR + 20 * 60), 100 * GIB), &s);
    assert_eq!(f.level, Level::Warning);
    assert!(f.full_in.is_some());
    // Missing for longer than the window: start over, as for a jump of two hours forward.
    for later in [HOUR + STEP + HOUR + 1, 3 * HOUR] {
        let mut trend = DiskTrend::new();
        feed(&mut trend, 0, HOUR + STEP, 100 * GIB, fill);
        let f = trend.observe(sample(later, fill(HOUR), 100 * GIB), &s);
        assert_eq!(f, NOTHING);
        assert_eq!(trend.samples.len(), 1);
        let out = feed(&mut trend, later + STEP, later + 16 * 60, 100 * GIB, |t| {
            fill(t - later + HOUR)
        });
        assert_eq!(out.last().unwrap().level, Level::Warning);
    }
}

#[test]
fn another_file_system_restarts_the_history() {
    let s = ForecastSettings::default();
    let fill = |t: u64| steady(60 * GIB, 2 * GIB, t);
    let replaced = [
        Sample {
            device: 8,
            ..sample(HOUR, fill(HOUR), 100 * GIB)
        },
        sample(HOUR, fill(HOUR), 200 * GIB),
    ];
    for other in replaced {
        let mut trend = DiskTrend::new();
        feed(&mut trend, 0, HOUR, 100 * GIB, fill);
        assert_eq!(trend.level(), Level::Warning);
        let f = trend.observe(other, &s);
        assert_eq!(f, NOTHING);
        assert_eq!(trend.samples.len(), 1);
        // The new file system does not grow: still nothing after a while.
        for t in (HOUR + STEP..2 * HOUR).step_by(STEP as usize) {
            let f = trend.observe(Sample { at: at(t), ..other }, &s);
            assert_eq!(f, NOTHING);
        }
    }
}

#[test]
fn exabyte_counts_do_not_overflow() {
    // 16 EiB - 1 total, 10 EiB used, 1 EiB/h: about 6 h.
    let total = u64::MAX;
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, 15 * 60 + 1, total, |t| {
        steady(10 * EIB, EIB, t)
    });
    let f = out.last().unwrap();
    let expected = (total - steady(10 * EIB, EIB, 15 * 60)) as f64 / EIB as f64;
    assert_near(f.full_in.unwrap(), hours(expected));
    assert_eq!(f.level, Level::Warning);
    // Small growth on a huge base is still seen: 1 GiB/h with 5 GiB free.
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, HOUR, total, |t| {
        steady(total - 6 * GIB, GIB, t)
    });
    assert_near(out.last().unwrap().full_in.unwrap(), hours(5.0));
    // Full and still growing is a forecast of zero; usage swinging across the whole range is
    // no panic.
    let mut trend = DiskTrend::new();
    let out = feed(&mut trend, 0, HOUR, total, |t| {
        (u128::from(total) * u128::from(t) / u128::from(HOUR)) as u64
    });
    let last = feed(&mut trend, HOUR, HOUR + 1, total, |_| total)[0];
    assert!(out.iter().all(|f| f.full_in.is_none_or(|d| d <= HORIZON)));
    assert_eq!(last.full_in, Some(Duration::ZERO));
    assert_eq!(last.level, Level::Critical);
    let mut trend = DiskTrend::new();
    feed(&mut trend, 0, 2 * HOUR, total, |t| {
        if t % 60 == 0 { 0 } else { total }
    });
}

#[test]
fn history_is_bounded() {
    let s = ForecastSettings::default();
    let mut trend = DiskTrend::new();
    feed(&mut trend, 0, 3 * HOUR, 100 * GIB, |t| {
        steady(60 * GIB, GIB, t)
    });
    assert_eq!(trend.samples.len(), (HOUR / STEP + 1) as usize);
    // A sample every 100 ms for 10 min: the cap, not the window, bounds the history.
    let mut trend = DiskTrend::new();
    let start = at(0);
    for i in 0..6000u64 {
        let s2 = Sample {
            at: start + Duration::from_millis(100 * i),
            ..sample(0, 60 * GIB + i * MIB, 100 * GIB)
        };
        trend.observe(s2, &s);
    }
    assert_eq!(trend.samples.len(), MAX_SAMPLES);
}

#[test]
fn random_series_never_panic_nor_give_nonsense() {
    let mut rng = Lcg(0x5eed);
    for series in 0..200 {
        let settings = if series % 2 == 0 {
            ForecastSettings::default()
        } else {
            // Anything, including settings `validate` would reject.
            ForecastSettings {
                window: Duration::from_secs(rng.below(7200)),
                min_history: Duration::from_secs(rng.below(7200)),
                floor_percent: rng.below(120) as u8,
                warning_within: Duration::from_secs(rng.below(100 * HOUR)),
                critical_within: Duration::from_secs(rng.below(100 * HOUR)),
            }
        };
        let mut trend = DiskTrend::new();
        let mut t = at(0);
        let mut total = [100 * GIB, u64::MAX, 0, 1][rng.below(4) as usize];
        let mut used = rng.below(total.max(1));
        let mut device = 1;
        for _ in 0..400 {
            match rng.below(100) {
                0 => t -= Duration::from_secs(rng.below(10 * HOUR)),
                1 => t += Duration::from_secs(rng.below(10 * HOUR)),
                2 => device += 1,
                3 => total = (rng.next() << 31) ^ rng.next(),
                4 => used = (rng.next() << 31) ^ rng.next(),
                5..=20 => used = used.saturating_sub(rng.below(GIB)),
                _ => used = used.saturating_add(rng.below(GIB / 10)),
            }
            t += Duration::from_millis(rng.below(120_000));
            let f = trend.observe(
                Sample {
                    at: t,
                    used_bytes: used,
                    total_bytes: total,
                    device,
                },
                &settings,
            );
            assert!(trend.samples.len() <= MAX_SAMPLES);
            assert_eq!(f.level, trend.level());
            match f.full_in {
                None => assert_eq!(f.level, Level::Clear),
                Some(d) => {
                    assert!(d <= HORIZON);
                    assert!(d.as_secs_f64().is_finite());
                    let _ = describe(d);
                }
            }
        }
    }
}

#[test]
fn describe_rounds_to_the_scale() {
    let text = |secs: u64| describe(Duration::from_secs(secs));
    assert_eq!(text(0), "less than 1 min");
    assert_eq!(text(59), "less than 1 min");
    assert_eq!(text(60), "about 1 min");
    assert_eq!(text(7 * 60 + 20), "about 7 min");
    assert_eq!(text(14 * 60 + 29), "about 14 min");
    assert_eq!(text(39 * 60), "about 40 min");
    assert_eq!(text(42 * 60), "about 40 min");
    assert_eq!(text(117 * 60), "about 115 min");
    assert_eq!(text(118 * 60), "about 2 h");
    assert_eq!(text(2 * 3600), "about 2 h");
    assert_eq!(text(5 * 3600 + 20 * 60), "about 5 h");
    assert_eq!(text(5 * 3600 + 40 * 60), "about 6 h");
    assert_eq!(text(47 * 3600), "about 47 h");
    assert_eq!(text(48 * 3600), "about 2 days");
    assert_eq!(text(3 * 86_400 + 5 * 3600), "about 3 days");
    assert_eq!(
        describe(Duration::MAX),
        format!("about {} days", (u128::from(u64::MAX) + 43_200) / 86_400)
    );
}
