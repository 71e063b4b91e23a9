//! `cryptobot-agent restart [--force]`: ask the running agent to restart the worker, honouring
//! the restart backoff unless `--force`; prints the outcome.
//!
//! Exit codes: 0 restarted, 1 deferred or refused, 2 the restart failed, 3 agent unreachable.

use std::{path::Path, process::ExitCode};

use cryptobot_proto::v1::{self as pb, restart_response::Outcome};

use crate::{
    cli::{EXIT_FAILURE, RestartArgs},
    client::{Client, ClientError},
};

pub(super) async fn run(socket: &Path, args: &RestartArgs) -> Result<ExitCode, ClientError> {
    let mut client = Client::connect(socket).await?;
    let response = client
        .rpc()
        .restart(pb::RestartRequest { force: args.force })
        .await
        .map_err(|e| client.error(e))?
        .into_inner();
    let (text, code) = outcome(response.outcome.as_ref());
    if code == 0 {
        println!("{text}");
    } else {
        eprintln!("{text}");
    }
    Ok(ExitCode::from(code))
}

/// What to print and the exit code.
fn outcome(outcome: Option<&Outcome>) -> (String, u8) {
    match outcome {
        Some(Outcome::Restarted(r)) => (format!("restarted: {}", r.message), 0),
        Some(Outcome::Deferred(d)) => (
            format!(
                "deferred: the restart backoff allows the next restart at {}; use --force to restart now",
                d.until
            ),
            1,
        ),
        Some(Outcome::Refused(r)) => (format!("refused: {}", r.reason), 1),
        Some(Outcome::RestartFailed(f)) => (format!("restart failed: {}", f.message), 2),
        None => (
            "the agent's answer has no outcome (is it a newer version?)".to_owned(),
            EXIT_FAILURE,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_have_distinct_exit_codes() {
        let restarted = Outcome::Restarted(pb::Restarted {
            message: "active again".into(),
        });
        assert_eq!(
            outcome(Some(&restarted)),
            ("restarted: active again".into(), 0)
        );
        let deferred = Outcome::Deferred(pb::Deferred {
            until: "2025-12-01T00:00:00Z".into(),
        });
        let (text, code) = outcome(Some(&deferred));
        assert_eq!(code, 1);
        assert!(
            text.contains("2025-12-01T00:00:00Z") && text.contains("--force"),
            "{text}"
        );
        let refused = Outcome::Refused(pb::Refused {
            reason: "paused".into(),
        });
        assert_eq!(outcome(Some(&refused)), ("refused: paused".into(), 1));
        let failed = Outcome::RestartFailed(pb::RestartFailed {
            message: "still failed".into(),
        });
        assert_eq!(outcome(Some(&failed)).1, 2);
        assert_eq!(outcome(None).1, EXIT_FAILURE);
    }
}
