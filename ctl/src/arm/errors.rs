//! Errors of Resource Manager calls. ARM reports failures as a `CloudError`
//! (`{"error":{"code","message","details"}}`); they are shown with their code and message.

use std::time::Duration;

use serde::Deserialize;

use crate::auth::AuthError;

/// The body of an ARM error response.
#[derive(Debug, Clone, Deserialize)]
pub struct CloudError {
    /// The error.
    pub error: CloudErrorBody,
}

/// `CloudError.error`.
#[derive(Debug, Clone, Deserialize)]
pub struct CloudErrorBody {
    /// Machine-readable code, e.g. `ResourceNotFound`, `Conflict`.
    #[serde(default)]
    pub code: String,
    /// For people.
    #[serde(default)]
    pub message: String,
}

/// A failed Resource Manager call.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// No token.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// ARM answered with an error.
    #[error("Azure error {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// ARM error code (or the HTTP reason when the body had none).
        code: String,
        /// ARM error message.
        message: String,
    },
    /// Still throttled (429) or failing (5xx) when the retries or the time ran out.
    #[error("Azure kept answering {status} after {attempts} attempts: {message}")]
    GaveUp {
        /// The last HTTP status (0: no answer).
        status: u16,
        /// How many requests were sent.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// The request could not be sent or its answer not read.
    #[error("cannot reach Azure Resource Manager at {url}: {message}")]
    Transport {
        /// The URL (without query).
        url: String,
        /// Why.
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from {url}: {message}")]
    Protocol {
        /// The URL (without query).
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The time allowed ran out (the duration is what was left when it was noticed).
    #[error("the time allowed ran out waiting for Azure")]
    Timeout(Duration),
}

impl ArmError {
    /// Builds an error from a non-success answer.
    pub fn from_response(status: u16, body: &[u8]) -> ArmError {
        match serde_json::from_slice::<CloudError>(body) {
            Ok(e) if !e.error.code.is_empty() || !e.error.message.is_empty() => ArmError::Api {
                status,
                code: e.error.code,
                message: e.error.message,
            },
            _ => ArmError::Api {
                status,
                code: reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Error")
                    .replace(' ', ""),
                message: String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
            },
        }
    }

    /// The ARM error code, if ARM answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            ArmError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, if ARM answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ArmError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_errors_keep_code_and_message() {
        let e = ArmError::from_response(
            409,
            br#"{"error":{"code":"Conflict","message":"Run command extension execution is in progress.","details":[]}}"#,
        );
        assert_eq!(e.code(), Some("Conflict"));
        assert_eq!(
            e.to_string(),
            "Azure error 409 Conflict: Run command extension execution is in progress."
        );
        let e = ArmError::from_response(502, b"<html>bad gateway</html>");
        assert_eq!(e.code(), Some("BadGateway"));
    }
}
