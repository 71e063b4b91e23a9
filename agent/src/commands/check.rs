//! `cryptobot-agent check`: run every probe once, print the report, exit with its status.

use std::process::ExitCode;

use crate::{
    checks::{self, HostPaths},
    cli::CheckArgs,
    config::Config,
    evaluate::evaluate,
    report::{AgentInfo, Report},
    state::JournalState,
};

pub(super) async fn run(config: &Config, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let report = check_once(config).await;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(ExitCode::from(report.status.exit_code()))
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
    let evaluation = evaluate(&readings, config, crash_count);
    Report::new(&readings, &evaluation, crash_count, AgentInfo::current())
}
