//! `cryptobot-agent alert test`, and the alerting of `check --alert`.

use std::process::ExitCode;

use chrono::Utc;

use crate::{
    alerts::Alerter,
    checks::{self, HostPaths},
    config::Config,
    report::{AgentInfo, Report},
    restart::maintenance::Pause,
    state::JournalState,
};

/// `check --alert`: the report goes through the same policy (its state is shared with the daemon
/// through the state directory) and sinks; waits at most `alerts.check_wait` for delivery. What is
/// not delivered by then stays in the outboxes for the next run or the daemon.
pub(super) async fn send_once(config: &Config, report: &Report) {
    let alerter = Alerter::start(&config.alerts, &config.state_dir, &report.agent.hostname);
    if !alerter.has_sinks() {
        eprintln!("alert: no sinks configured");
        return;
    }
    let now = Utc::now();
    let paused = Pause::load(&config.state_dir)
        .0
        .is_some_and(|p| p.active_at(now));
    alerter.observe(report, paused, now);
    if !alerter.flush(config.alerts.check_wait).await {
        for s in alerter.sinks().iter().filter(|s| s.pending > 0) {
            eprintln!(
                "alert: {} ({}): {} not delivered yet{}",
                s.name,
                s.target,
                s.pending,
                s.last_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
    }
    alerter.shutdown().await;
}

/// `alert test`.
pub(super) async fn test(config: &Config) -> anyhow::Result<ExitCode> {
    let report = current_report(config).await;
    let alerter = Alerter::start(&config.alerts, &config.state_dir, &report.agent.hostname);
    if !alerter.has_sinks() {
        println!(
            "no alert sinks are configured (see [alerts] in the configuration, or the environment variables)"
        );
        alerter.shutdown().await;
        return Ok(ExitCode::FAILURE);
    }
    let results = alerter.test(&report).await;
    alerter.shutdown().await;
    let mut failed = false;
    for r in &results {
        match &r.error {
            None => println!("{} ({}, {}): delivered", r.sink, r.kind, r.target),
            Some(e) => {
                failed = true;
                println!("{} ({}, {}): FAILED: {e}", r.sink, r.kind, r.target);
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A fresh report for the test message (the journal window is read but not moved on).
async fn current_report(config: &Config) -> Report {
    let previous = JournalState::load(&config.state_dir, &config.unit).unwrap_or(None);
    let readings = checks::collect(config, &HostPaths::default(), None, previous).await;
    let crash_count = readings.service.as_ref().ok().map(|f| f.n_restarts);
    Report::judge(&readings, config, crash_count, None, AgentInfo::current())
}
