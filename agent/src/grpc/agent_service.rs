//! `cryptobot.agent.v1.Agent`: reads the latest snapshot, forwards controls to the supervisor.
//!
//! Read-only RPCs never wait for probes: they convert the snapshot the supervisor published last.
//! Mutating RPCs first pass the listener's [`Access`] rule, then wait for the supervisor's answer.

use std::pin::Pin;

use cryptobot_proto::v1::{self as pb, agent_server::Agent};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::{
    auth::Access,
    convert::{self, ReplyError},
};
use crate::handle::{AgentGone, AgentHandle, Control, ControlReply};

/// The service behind one listener.
#[derive(Debug, Clone)]
pub struct AgentService {
    handle: AgentHandle,
    access: Access,
    shutdown: CancellationToken,
}

impl AgentService {
    /// A service over `handle` with this access rule; Watch streams end when `shutdown` fires.
    pub fn new(handle: AgentHandle, access: Access, shutdown: CancellationToken) -> Self {
        AgentService {
            handle,
            access,
            shutdown,
        }
    }

    async fn control<T>(
        &self,
        request: &Request<T>,
        control: Control,
    ) -> Result<ControlReply, Status> {
        self.access.authorize_mutation(request.metadata())?;
        tracing::info!(message = "Control request.", ?control, remote = ?request.remote_addr());
        self.handle
            .control(control)
            .await
            .map_err(|AgentGone| Status::unavailable(AgentGone.to_string()))
    }
}

fn reply_status(e: ReplyError) -> Status {
    match e {
        ReplyError::Refused(reason) => Status::failed_precondition(reason),
        ReplyError::Unexpected(_) => Status::internal(e.to_string()),
    }
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<pb::AgentStatus, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for AgentService {
    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        Ok(Response::new(convert::agent_status(
            &self.handle.snapshot(),
        )))
    }

    type WatchStatusStream = StatusStream;

    async fn watch_status(
        &self,
        _request: Request<pb::WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        // A fresh watch stream yields the current snapshot first, then every newer one; it ends
        // when the supervisor goes away or the server shuts down.
        let stream = WatchStream::new(self.handle.subscribe())
            .map(|snapshot| Ok(convert::agent_status(&snapshot)))
            .take_until(self.shutdown.clone().cancelled_owned());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_events(
        &self,
        request: Request<pb::GetEventsRequest>,
    ) -> Result<Response<pb::GetEventsResponse>, Status> {
        let limit = request.get_ref().limit;
        Ok(Response::new(convert::events(
            &self.handle.snapshot(),
            limit,
        )))
    }

    async fn restart(
        &self,
        request: Request<pb::RestartRequest>,
    ) -> Result<Response<pb::RestartResponse>, Status> {
        let force = request.get_ref().force;
        let reply = self.control(&request, Control::Restart { force }).await?;
        convert::restart_response(reply)
            .map(Response::new)
            .map_err(reply_status)
    }

    async fn pause(
        &self,
        request: Request<pb::PauseRequest>,
    ) -> Result<Response<pb::PauseResponse>, Status> {
        // Authorise before judging the request, so that strangers learn nothing from the answer.
        self.access.authorize_mutation(request.metadata())?;
        let control =
            convert::pause_control(request.get_ref()).map_err(Status::invalid_argument)?;
        let reply = self.control(&request, control).await?;
        convert::pause_response(reply)
            .map(Response::new)
            .map_err(reply_status)
    }

    async fn resume(
        &self,
        request: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::ResumeResponse>, Status> {
        let reply = self.control(&request, Control::Resume).await?;
        convert::resume_response(reply)
            .map(Response::new)
            .map_err(reply_status)
    }

    async fn reset_backoff(
        &self,
        request: Request<pb::ResetBackoffRequest>,
    ) -> Result<Response<pb::ResetBackoffResponse>, Status> {
        let reply = self.control(&request, Control::ResetBackoff).await?;
        convert::reset_backoff_response(reply)
            .map(Response::new)
            .map_err(reply_status)
    }
}
