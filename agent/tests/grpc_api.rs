//! The gRPC API in process: the real servers on a unix socket and on TCP, over published sample
//! snapshots and a fake supervisor.

#[path = "grpc_common/mod.rs"]
mod common;

use std::time::Duration;

use common::{PATIENCE, Supervisor, TestAgent};
use cryptobot_agent::{
    daemon::Control,
    grpc::{AGENT_SERVICE, MAX_MESSAGE_BYTES},
    health::Status,
};
use cryptobot_proto::v1::{self as pb, agent_client::AgentClient, restart_response::Outcome};
use futures_util::StreamExt;
use tonic::{Code, Request, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("answered in time")
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

#[tokio::test]
async fn get_status_carries_the_report_over_unix_and_tcp() {
    let agent = TestAgent::start(None).await;
    let snapshot = agent.current();
    for channel in [agent.unix_channel().await, agent.tcp_channel().await] {
        let s = AgentClient::new(channel)
            .get_status(pb::GetStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(s.seq, 1);
        assert_eq!(s.status(), pb::HealthStatus::Healthy);
        assert!(s.serving);
        assert_eq!(s.service_active, Some(true));
        assert_eq!(s.service_running, Some(true));
        assert_eq!(s.crash_count, Some(0));
        assert_eq!(s.disk_usage_percent, Some(41));
        assert_eq!(s.memory_usage_percent, Some(22));
        assert_eq!(s.heartbeat_age_seconds, Some(3));
        assert!(s.alerts.is_empty());
        let names: Vec<&str> = s.checks.iter().map(|c| c.name.as_str()).collect();
        assert!(
            names.contains(&"service") && names.contains(&"disk:/"),
            "{names:?}"
        );
        assert!(s.checks.iter().all(|c| c.alert.is_none()));
        assert_eq!(s.unit.as_ref().unwrap().name, "faucet_worker.service");
        assert_eq!(s.agent.as_ref().unwrap().hostname, "vm1");
        assert_eq!(s.backoff.as_ref().unwrap().backoff_seconds, 20);
        assert!(s.pause.is_none());
        assert_eq!(s.events.len(), 2);
        assert_eq!(s.report_json, snapshot.to_json());
        let json: serde_json::Value = serde_json::from_str(&s.report_json).unwrap();
        assert_eq!(json["status"], "HEALTHY");
        assert_eq!(json["daemon"]["backoff"]["restart_count"], 1);
    }
}

#[tokio::test]
async fn get_events_returns_the_newest() {
    let agent = TestAgent::start(None).await;
    let mut client = AgentClient::new(agent.tcp_channel().await);
    let all = client
        .get_events(pb::GetEventsRequest { limit: None })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].kind(), pb::EventKind::Transition);
    let last = client
        .get_events(pb::GetEventsRequest { limit: Some(1) })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(last, all[1..]);
}

#[tokio::test]
async fn watch_status_sends_the_current_snapshot_then_changes() {
    let agent = TestAgent::start(None).await;
    let mut stream = AgentClient::new(agent.unix_channel().await)
        .watch_status(pb::WatchStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = within(stream.next()).await.unwrap().unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.status(), pb::HealthStatus::Healthy);

    let seq = agent.publish(Status::Critical);
    let next = within(stream.next()).await.unwrap().unwrap();
    assert_eq!(next.seq, seq);
    assert_eq!(next.status(), pb::HealthStatus::Critical);
    assert!(!next.serving);
    assert_eq!(next.report_json, agent.current().to_json());
}

async fn check(client: &mut HealthClient<Channel>, service: &str) -> Result<ServingStatus, Code> {
    client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status())
        .map_err(|s| s.code())
}

#[tokio::test]
async fn health_follows_the_snapshots() {
    let agent = TestAgent::start(None).await;
    let unit = "faucet_worker.service";
    for channel in [agent.unix_channel().await, agent.tcp_channel().await] {
        let mut health = HealthClient::new(channel);
        assert_eq!(check(&mut health, "").await, Ok(ServingStatus::Serving));
        assert_eq!(check(&mut health, unit).await, Ok(ServingStatus::Serving));
        assert_eq!(
            check(&mut health, AGENT_SERVICE).await,
            Ok(ServingStatus::Serving)
        );
        assert_eq!(
            check(&mut health, "other.service").await,
            Err(Code::NotFound)
        );
    }

    let mut health = HealthClient::new(agent.tcp_channel().await);
    let mut watches = Vec::new();
    for service in ["", unit] {
        let mut w = health
            .watch(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let first = within(w.next()).await.unwrap().unwrap();
        assert_eq!(first.status(), ServingStatus::Serving, "{service:?}");
        watches.push(w);
    }

    agent.publish(Status::Critical);
    for w in &mut watches {
        let next = within(w.next()).await.unwrap().unwrap();
        assert_eq!(next.status(), ServingStatus::NotServing);
    }
    assert_eq!(check(&mut health, "").await, Ok(ServingStatus::NotServing));
    assert_eq!(
        check(&mut health, unit).await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(
        check(&mut health, AGENT_SERVICE).await,
        Ok(ServingStatus::Serving),
        "the API itself still serves"
    );

    // The same status again is no change; the next change is back to SERVING.
    agent.publish(Status::Warning);
    agent.publish(Status::Healthy);
    let next = within(watches[0].next()).await.unwrap().unwrap();
    assert_eq!(next.status(), ServingStatus::Serving);
}

#[tokio::test]
async fn tcp_without_a_configured_token_refuses_every_mutation() {
    let mut agent = TestAgent::start(None).await;
    let mut client = AgentClient::new(agent.tcp_channel().await);
    let refused = [
        client
            .restart(pb::RestartRequest { force: true })
            .await
            .map(drop),
        client
            .pause(with_token(
                pb::PauseRequest {
                    duration_seconds: None,
                },
                "anything",
            ))
            .await
            .map(drop),
        client.resume(pb::ResumeRequest {}).await.map(drop),
        client
            .reset_backoff(pb::ResetBackoffRequest {})
            .await
            .map(drop),
    ];
    for r in refused {
        let e = r.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        assert!(e.message().contains("grpc.token"), "{}", e.message());
    }
    // Read-only calls stay open.
    client.get_status(pb::GetStatusRequest {}).await.unwrap();
    // Nothing reached the supervisor: the first control it sees comes from the unix socket.
    AgentClient::new(agent.unix_channel().await)
        .resume(pb::ResumeRequest {})
        .await
        .unwrap();
    assert_eq!(agent.next_control().await, Control::Resume);
}

#[tokio::test]
async fn tcp_mutations_need_the_right_token() {
    let mut agent = TestAgent::start(Some("s3cret")).await;
    let mut client = AgentClient::new(agent.tcp_channel().await);

    let e = client
        .restart(pb::RestartRequest { force: true })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    for wrong in ["s3cre", "s3cret ", "S3CRET", ""] {
        let e = client
            .restart(with_token(pb::RestartRequest { force: true }, wrong))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{wrong:?}");
    }

    let r = client
        .restart(with_token(pb::RestartRequest { force: true }, "s3cret"))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(r.outcome, Some(Outcome::Restarted(_))), "{r:?}");
    assert_eq!(
        agent.next_control().await,
        Control::Restart { force: true },
        "only the authorised request reached the supervisor"
    );
    client
        .reset_backoff(with_token(pb::ResetBackoffRequest {}, "s3cret"))
        .await
        .unwrap();
    assert_eq!(agent.next_control().await, Control::ResetBackoff);
    client.get_status(pb::GetStatusRequest {}).await.unwrap();
}

#[tokio::test]
async fn unix_socket_needs_no_token_and_maps_every_outcome() {
    let mut agent = TestAgent::start(Some("s3cret")).await;
    let mut client = AgentClient::new(agent.unix_channel().await);

    let r = client
        .restart(pb::RestartRequest { force: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.outcome,
        Some(Outcome::Deferred(pb::Deferred {
            until: "2025-12-01T00:15:14Z".into()
        }))
    );
    assert_eq!(
        agent.next_control().await,
        Control::Restart { force: false }
    );

    let r = client
        .pause(pb::PauseRequest {
            duration_seconds: Some(3600),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.until.as_deref(), Some("2025-12-01T00:15:14Z"));
    assert_eq!(
        agent.next_control().await,
        Control::Pause {
            duration: Some(Duration::from_secs(3600))
        }
    );

    let r = client
        .pause(pb::PauseRequest {
            duration_seconds: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.until, None);
    assert_eq!(
        agent.next_control().await,
        Control::Pause { duration: None }
    );

    let e = client
        .pause(pb::PauseRequest {
            duration_seconds: Some(u64::MAX),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    client.resume(pb::ResumeRequest {}).await.unwrap();
    assert_eq!(agent.next_control().await, Control::Resume);
}

#[tokio::test]
async fn gone_supervisor_is_unavailable() {
    let agent = TestAgent::start_with(None, Supervisor::Gone).await;
    let mut client = AgentClient::new(agent.unix_channel().await);
    let e = client
        .restart(pb::RestartRequest { force: true })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    // Reading still works: the last snapshot is still there.
    client.get_status(pb::GetStatusRequest {}).await.unwrap();
}

/// Sends `message` to GetStatus as raw protobuf bytes (unknown fields are allowed on the wire).
async fn raw_get_status(channel: Channel, size: usize) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    // An AgentStatus is a valid message with a large string field; GetStatusRequest ignores it.
    let message = pb::AgentStatus {
        report_json: "x".repeat(size),
        ..Default::default()
    };
    let path = format!("/{AGENT_SERVICE}/GetStatus").parse().unwrap();
    grpc.unary::<_, pb::AgentStatus, _>(
        Request::new(message),
        path,
        tonic_prost::ProstCodec::default(),
    )
    .await
    .map(drop)
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let agent = TestAgent::start(None).await;
    for channel in [agent.unix_channel().await, agent.tcp_channel().await] {
        raw_get_status(channel.clone(), MAX_MESSAGE_BYTES - 1024)
            .await
            .expect("a request under the limit is served");
        let e = raw_get_status(channel, MAX_MESSAGE_BYTES + 1)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
        assert!(e.message().contains("65536"), "the server's limit: {e:?}");
    }
}

#[tokio::test]
async fn shutdown_ends_streams_and_servers() {
    let mut agent = TestAgent::start(None).await;
    let mut status = AgentClient::new(agent.unix_channel().await)
        .watch_status(pb::WatchStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut health = HealthClient::new(agent.tcp_channel().await)
        .watch(HealthCheckRequest { service: "".into() })
        .await
        .unwrap()
        .into_inner();
    within(status.next()).await.unwrap().unwrap();
    within(health.next()).await.unwrap().unwrap();

    agent.shutdown.cancel();
    // Each stream ends (or fails) instead of hanging on; then both servers return cleanly, well
    // before the grace period would force them.
    while let Some(Ok(_)) = within(status.next()).await {}
    while let Some(Ok(_)) = within(health.next()).await {}
    let grace = cryptobot_agent::grpc::SHUTDOWN_GRACE;
    let unix = tokio::time::timeout(grace, &mut agent.unix_server).await;
    let tcp = tokio::time::timeout(grace, &mut agent.tcp_server).await;
    unix.expect("unix server stopped before the grace period")
        .unwrap()
        .unwrap();
    tcp.expect("tcp server stopped before the grace period")
        .unwrap()
        .unwrap();
}
