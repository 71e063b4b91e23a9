//! `cryptobot-agent check`: run every probe once, print the report, exit with its status.

use std::process::ExitCode;

use crate::{
    checks::{self, HostPaths, heartbeat::Heartbeat},
    cli::CheckArgs,
    config::Config,
    report::{AgentInfo, Report},
    restart::{
        control::{self, Situation},
        helper,
        maintenance::Pause,
        policy::Decision,
        state::BackoffState,
    },
    state::JournalState,
    systemd,
};

pub(super) async fn run(config: &Config, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let report = check_once(config).await;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if args.restart {
        restart_if_needed(config, &report).await;
    }
    if args.alert {
        super::alert::send_once(config, &report).await;
    }
    Ok(ExitCode::from(report.status.exit_code()))
}

/// `check --restart`: the daemon's restart policy, applied once, with the same persisted backoff.
async fn restart_if_needed(config: &Config, report: &Report) {
    let now = chrono::Utc::now();
    let Some(facts) = &report.unit else {
        eprintln!("restart: skipped, the worker's state is unknown");
        return;
    };
    let heartbeat_written_at = match &report.heartbeat {
        Some(Heartbeat::Found { written_at, .. }) => Some(*written_at),
        _ => None,
    };
    let (mut state, err) = BackoffState::load(&config.state_dir, &config.restart);
    if let Some(e) = err {
        eprintln!("restart: {e}");
    }
    let paused = Pause::load(&config.state_dir)
        .0
        .is_some_and(|p| p.active_at(now));
    let situation = Situation {
        facts,
        heartbeat_written_at,
        paused,
        in_flight: false,
        connected: true,
    };
    let step = control::automatic(&situation, &mut state, &config.restart, now);
    if step.backoff_reset {
        eprintln!("restart: worker stable, restart backoff reset");
    }
    match step.decision {
        Decision::Nothing if paused => eprintln!("restart: skipped, restarts are paused"),
        Decision::Nothing if !config.restart.enabled => {
            eprintln!("restart: skipped, restarts are disabled ([restart] enabled = false)");
        }
        Decision::Nothing => {}
        Decision::Wait { until } => {
            eprintln!("restart: not before {} (backoff)", until.to_rfc3339());
        }
        Decision::RestartNow {
            cause,
            reset_failed,
            ..
        } => {
            state.record_attempt(now, &config.restart);
            let outcome = async {
                let conn = systemd::connect().await.map_err(|e| e.to_string())?;
                let asked = chrono::Utc::now();
                let via = helper::restart_worker(
                    &conn,
                    &config.unit,
                    reset_failed,
                    &config.state_dir,
                    asked,
                )
                .await?;
                systemd::wait_active(&conn, &config.unit, asked, config.restart.verify_timeout)
                    .await
                    .map_err(|e| format!("{e}{}", helper::hint(via)))
            };
            match outcome.await {
                Ok(f) => eprintln!(
                    "restart: {cause}: restarted, {} is active (pid {})",
                    config.unit, f.main_pid
                ),
                Err(e) => eprintln!("restart: {cause}: restart failed: {e}"),
            }
        }
    }
    if let Err(e) = state.save(&config.state_dir) {
        eprintln!("restart: cannot save the restart state: {e}");
    }
}

/// One full check, remembering where the journal window ended so the next check starts there.
pub async fn check_once(config: &Config) -> Report {
    let previous = JournalState::load(&config.state_dir, &config.unit).unwrap_or_else(|e| {
        tracing::warn!(message = "Journal state unusable; starting a fresh window.", error = %e);
        None
    });
    let readings = checks::collect(config, &HostPaths::default(), None, previous).await;
    if let Ok(journal) = &readings.journal {
        if let Err(e) = JournalState::save(&config.state_dir, &config.unit, journal.until) {
            tracing::warn!(
                message = "Cannot record the journal window; the next check may report the same errors again.",
                error = %e
            );
        }
    }
    let crash_count = readings.service.as_ref().ok().map(|f| f.n_restarts);
    Report::judge(&readings, config, crash_count, None, AgentInfo::current())
}
