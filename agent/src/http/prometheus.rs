//! The snapshot as Prometheus metrics, named `cryptobot_*`, in the Prometheus text format (0.0.4)
//! or OpenMetrics. Every metric is a gauge (the counts the agent has can go back to 0); a value
//! that is not known is left out, never reported as 0. Names follow Prometheus' lint rules, which
//! reserve `_count` for histograms and summaries: the report's `crash_count` is
//! `cryptobot_systemd_restarts`, the backoff's `restart_count` is `cryptobot_agent_restarts`.

use prometheus_client::{
    collector::Collector,
    encoding::{
        DescriptorEncoder, EncodeLabelSet, EncodeMetric, prometheus_text, text as openmetrics_text,
    },
    metrics::{
        MetricType,
        family::Family,
        gauge::{ConstGauge, Gauge},
    },
    registry::Registry,
};

use crate::{
    checks::heartbeat::Heartbeat,
    handle::Snapshot,
    health::{CheckOutcome, Status},
};

/// `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `Content-Type` of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The text formats Prometheus can scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    /// `text/plain; version=0.0.4`.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

const STATUSES: [Status; 4] = [
    Status::Healthy,
    Status::Warning,
    Status::Critical,
    Status::Unknown,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    check: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MountLabels {
    mount: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    hostname: String,
}

fn word(status: Status) -> String {
    status.as_str().to_ascii_lowercase()
}

/// Registers a gauge with this value, or nothing when the value is unknown.
fn gauge(registry: &mut Registry, name: &str, help: &str, value: Option<i64>) {
    if let Some(value) = value {
        let g: Gauge = Gauge::default();
        g.set(value);
        registry.register(name, help, g);
    }
}

/// A gauge family with one series per status, 1 for the current one and 0 for the others.
fn status_family<L>(family: &Family<L, Gauge>, labels: impl Fn(String) -> L, current: Status)
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    for status in STATUSES {
        family
            .get_or_create(&labels(word(status)))
            .set(i64::from(status == current));
    }
}

/// Every metric of one snapshot.
pub fn registry(snapshot: &Snapshot) -> Registry {
    let report = &snapshot.report;
    let daemon = &snapshot.daemon;
    let mut r = Registry::with_prefix("cryptobot");

    let status = Family::<StatusLabels, Gauge>::default();
    status_family(&status, |status| StatusLabels { status }, report.status);
    r.register(
        "status",
        "Overall health status of the worker (1 for the current status)",
        status,
    );

    let checks = Family::<CheckLabels, Gauge>::default();
    for CheckOutcome {
        name, status: now, ..
    } in &report.checks
    {
        status_family(
            &checks,
            |status| CheckLabels {
                check: name.clone(),
                status,
            },
            *now,
        );
    }
    r.register(
        "check_status",
        "Status of each check (1 for the current status)",
        checks,
    );

    gauge(
        &mut r,
        "service_active",
        "Whether systemd reports the worker unit active",
        report.service_active.map(i64::from),
    );
    gauge(
        &mut r,
        "service_running",
        "Whether the worker's main process is running",
        report.service_running.map(i64::from),
    );
    gauge(
        &mut r,
        "systemd_restarts",
        "Automatic restarts of the worker by systemd (NRestarts, the crash-loop check's count)",
        report.crash_count.map(i64::from),
    );

    let disks = Family::<MountLabels, Gauge>::default();
    let mut any_disk = false;
    for disk in &report.disks {
        if let Some(usage) = disk.usage {
            any_disk = true;
            disks
                .get_or_create(&MountLabels {
                    mount: disk.mount.clone(),
                })
                .set(i64::from(usage.percent));
        }
    }
    if any_disk {
        r.register(
            "disk_usage_percent",
            "Used space of each watched file system, percent (df's Use%)",
            disks,
        );
    }
    r.register_collector(Box::new(FullIn(
        report
            .disks
            .iter()
            .filter_map(|d| Some((d.mount.clone(), d.forecast?)))
            .collect(),
    )));

    gauge(
        &mut r,
        "memory_usage_percent",
        "Used memory, percent ((MemTotal - MemAvailable) / MemTotal)",
        report.memory_usage_percent.map(i64::from),
    );
    gauge(
        &mut r,
        "heartbeat_present",
        "Whether a heartbeat file of the worker exists",
        report
            .heartbeat
            .as_ref()
            .map(|h| i64::from(matches!(h, Heartbeat::Found { .. }))),
    );
    gauge(
        &mut r,
        "heartbeat_age_seconds",
        "Seconds since the worker last wrote its heartbeat",
        match &report.heartbeat {
            Some(Heartbeat::Found { age_seconds, .. }) => Some(*age_seconds),
            _ => None,
        },
    );
    gauge(
        &mut r,
        "journal_errors",
        "Error entries of the worker unit in the journal since the previous check",
        report
            .journal
            .as_ref()
            .map(|j| i64::try_from(j.count).unwrap_or(i64::MAX)),
    );
    gauge(
        &mut r,
        "last_check_timestamp_seconds",
        "When the checks behind these values ran, Unix time",
        Some(report.timestamp.timestamp()),
    );

    gauge(
        &mut r,
        "restart_enabled",
        "Whether the agent restarts the worker",
        Some(i64::from(daemon.restart_enabled)),
    );
    gauge(
        &mut r,
        "agent_restarts",
        "Restarts of the worker by the agent in the current backoff episode",
        Some(i64::from(daemon.backoff.restart_count)),
    );
    gauge(
        &mut r,
        "restart_backoff_seconds",
        "Delay before the agent's next restart of the worker",
        Some(i64::try_from(daemon.backoff.backoff_seconds).unwrap_or(i64::MAX)),
    );
    gauge(
        &mut r,
        "paused",
        "Whether restarts and alerts are paused for maintenance",
        Some(i64::from(daemon.pause.is_some())),
    );
    gauge(
        &mut r,
        "agent_start_timestamp_seconds",
        "When the agent started, Unix time",
        Some(daemon.started_at.timestamp()),
    );

    let build = Family::<BuildLabels, Gauge>::default();
    build
        .get_or_create(&BuildLabels {
            version: report.agent.version.clone(),
            hostname: report.agent.hostname.clone(),
        })
        .set(1);
    r.register(
        "build_info",
        "The agent's version and host (always 1)",
        build,
    );
    r
}

/// `cryptobot_disk_full_in_seconds`, a collector so that it is described (`# HELP`, `# TYPE`)
/// even when no mount has a forecast: rules and dashboards can check they name a real metric. It
/// has no sample then, as a value that is not known is never reported. (A registered family
/// without samples writes nothing at all.)
#[derive(Debug)]
struct FullIn(Vec<(String, u64)>);

impl Collector for FullIn {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "disk_full_in_seconds",
            "Seconds until the file system is full at its recent fill rate (no sample without a forecast).",
            None,
            MetricType::Gauge,
        )?;
        for (mount, seconds) in &self.0 {
            let labels = MountLabels {
                mount: mount.clone(),
            };
            ConstGauge::new(i64::try_from(*seconds).unwrap_or(i64::MAX))
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The snapshot's metrics in `format`.
pub fn encode(snapshot: &Snapshot, format: TextFormat) -> String {
    let registry = registry(snapshot);
    let mut out = String::new();
    let result = match format {
        TextFormat::Prometheus => prometheus_text::encode(&mut out, &registry),
        TextFormat::OpenMetrics => openmetrics_text::encode(&mut out, &registry),
    };
    if let Err(e) = result {
        // Writing to a String only fails if a metric's own encoding does; say so in the output.
        tracing::error!(error = %e, "cannot encode metrics");
        out.push_str("# error: cannot encode metrics\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::testing::sample_snapshot;

    fn sample_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn healthy_snapshot_has_every_metric() {
        let text = encode(&sample_snapshot(Status::Healthy), TextFormat::Prometheus);
        let lines = sample_lines(&text);
        for expected in [
            "cryptobot_status{status=\"healthy\"} 1",
            "cryptobot_status{status=\"critical\"} 0",
            "cryptobot_service_active 1",
            "cryptobot_service_running 1",
            "cryptobot_systemd_restarts 0",
            "cryptobot_disk_usage_percent{mount=\"/\"} 41",
            "cryptobot_memory_usage_percent 22",
            "cryptobot_heartbeat_present 1",
            "cryptobot_heartbeat_age_seconds 3",
            "cryptobot_journal_errors 0",
            "cryptobot_check_status{check=\"service\",status=\"healthy\"} 1",
            "cryptobot_check_status{check=\"service\",status=\"warning\"} 0",
            "cryptobot_restart_backoff_seconds 20",
            "cryptobot_agent_restarts 1",
            "cryptobot_paused 0",
        ] {
            assert!(lines.contains(&expected), "{expected} missing in\n{text}");
        }
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!(
                "cryptobot_build_info{{version=\"{version}\",hostname=\"vm1\"}} 1"
            )),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn unknown_values_are_left_out() {
        let text = encode(&sample_snapshot(Status::Unknown), TextFormat::Prometheus);
        let lines = sample_lines(&text);
        assert!(lines.contains(&"cryptobot_status{status=\"unknown\"} 1"));
        for absent in [
            "cryptobot_service_active",
            "cryptobot_service_running",
            "cryptobot_systemd_restarts",
        ] {
            assert!(
                !lines.iter().any(|l| l.starts_with(absent)),
                "{absent} in\n{text}"
            );
        }
        assert!(lines.contains(&"cryptobot_memory_usage_percent 22"));
    }

    #[test]
    fn critical_snapshot_reports_the_service_down() {
        let text = encode(&sample_snapshot(Status::Critical), TextFormat::Prometheus);
        let lines = sample_lines(&text);
        assert!(lines.contains(&"cryptobot_status{status=\"critical\"} 1"));
        assert!(lines.contains(&"cryptobot_service_active 0"));
        assert!(lines.contains(&"cryptobot_check_status{check=\"service\",status=\"critical\"} 1"));
    }

    #[test]
    fn openmetrics_ends_with_eof() {
        let text = encode(&sample_snapshot(Status::Healthy), TextFormat::OpenMetrics);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("cryptobot_status{status=\"healthy\"} 1"));
    }

    #[test]
    fn the_disk_forecast_is_a_sample_only_when_there_is_one() {
        let mut snapshot = sample_snapshot(Status::Healthy);
        let text = encode(&snapshot, TextFormat::Prometheus);
        assert!(
            text.contains("# TYPE cryptobot_disk_full_in_seconds gauge"),
            "{text}"
        );
        assert!(
            !sample_lines(&text)
                .iter()
                .any(|l| l.starts_with("cryptobot_disk_full_in_seconds")),
            "{text}"
        );
        snapshot.report.disks[0].forecast = Some(18_000);
        let text = encode(&snapshot, TextFormat::Prometheus);
        assert!(
            sample_lines(&text).contains(&"cryptobot_disk_full_in_seconds{mount=\"/\"} 18000"),
            "{text}"
        );
    }
}
