//! `grpc.health.v1.Health` (Check and Watch, from `tonic-health`) following the agent's snapshots.
//!
//! Service `""` (overall) and the worker's unit name are SERVING exactly when the latest snapshot
//! [is serving](crate::handle::Snapshot::is_serving), NOT_SERVING otherwise. The API itself,
//! `cryptobot.agent.v1.Agent`, is SERVING while the server runs. Everything turns NOT_SERVING when
//! the server shuts down or the supervisor goes away, and Watch streams end on shutdown so that a
//! graceful shutdown is not held up by them.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tonic_health::{
    ServingStatus,
    pb::{
        HealthCheckRequest, HealthCheckResponse,
        health_server::{Health, HealthServer},
    },
    server::{HealthReporter, HealthService},
};

use crate::handle::{AgentHandle, Snapshot};

/// The unit name used when the first snapshot does not name one.
pub const DEFAULT_UNIT: &str = "faucet_worker.service";

/// The service names health reports for: the worker unit's name, taken from the first snapshot.
pub fn unit_name(snapshot: &Snapshot) -> String {
    snapshot
        .report
        .unit
        .as_ref()
        .map(|u| u.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_UNIT.to_owned())
}

fn serving(serving: bool) -> ServingStatus {
    if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// The health service of one server, and the task that keeps it current.
pub(crate) async fn service(
    handle: &AgentHandle,
    shutdown: CancellationToken,
) -> HealthServer<ShutdownAwareHealth> {
    let reporter = HealthReporter::new();
    let mut snapshots = handle.subscribe();
    let first = snapshots.borrow_and_update().clone();
    let unit = unit_name(&first);
    let mut current = serving(first.is_serving());
    reporter.set_service_status("", current).await;
    reporter.set_service_status(&unit, current).await;
    reporter
        .set_service_status(super::AGENT_SERVICE, ServingStatus::Serving)
        .await;

    let follower = reporter.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
            let next = serving(snapshots.borrow_and_update().is_serving());
            // Watchers hear about changes only, not about every snapshot.
            if next != current {
                current = next;
                follower.set_service_status("", current).await;
                follower.set_service_status(&unit, current).await;
            }
        }
        for name in ["", unit.as_str(), super::AGENT_SERVICE] {
            follower
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    });

    HealthServer::new(ShutdownAwareHealth {
        inner: HealthService::from_health_reporter(reporter),
        shutdown,
    })
    .max_decoding_message_size(super::MAX_MESSAGE_BYTES)
}

/// `tonic-health`'s service, with Watch streams that end when the server shuts down.
#[derive(Debug)]
pub struct ShutdownAwareHealth {
    inner: HealthService,
    shutdown: CancellationToken,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for ShutdownAwareHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let stream = self.inner.watch(request).await?.into_inner();
        let stop = self.shutdown.clone().cancelled_owned();
        Ok(Response::new(Box::pin(stream.take_until(stop))))
    }
}
