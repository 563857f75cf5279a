//! The API's errors: each one knows its HTTP status and becomes a JSON body
//! `{"error": "what is wrong", "code": "machine_readable"}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use midge_proto::ReasonCode;

/// Why an API request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid topic: {0}")]
    BadTopic(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// The resource is not in a state that allows the request (a kept
    /// offline session asked to disconnect without discarding it).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::BadTopic(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::BadTopic(_) => "bad_topic",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Gone(_) => "gone",
            ApiError::TooLarge(_) => "too_large",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable(_) => "unavailable",
        }
    }

    /// The error for a CONNECT the broker refused to an internal session.
    pub fn from_connack(reason: ReasonCode) -> ApiError {
        match reason {
            ReasonCode::BadUserNameOrPassword => {
                ApiError::Unauthorized("bad username or password".into())
            }
            ReasonCode::NotAuthorized => ApiError::Unauthorized(
                "credentials required: anonymous access is off (use Basic auth or a bearer token)"
                    .into(),
            ),
            ReasonCode::ConnectionRateExceeded => ApiError::TooManyRequests(
                "too many failed logins from this address; try again later".into(),
            ),
            ReasonCode::ServerBusy | ReasonCode::ServerUnavailable => {
                ApiError::Unavailable("the broker is at its connection limit".into())
            }
            ReasonCode::ServerShuttingDown => {
                ApiError::Unavailable("the broker is shutting down".into())
            }
            other => ApiError::Unavailable(format!("the broker refused the session: {other:?}")),
        }
    }

    /// As JSON text, for Socket.IO acknowledgements.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.to_string(), "code": self.code() })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.to_json())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"midge\", Bearer realm=\"midge\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_carries_www_authenticate() {
        let r = ApiError::Unauthorized("x".into()).into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
        let r = ApiError::Forbidden("y".into()).into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(!r.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn refusals_map_to_statuses() {
        assert_eq!(
            ApiError::from_connack(ReasonCode::BadUserNameOrPassword).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ApiError::from_connack(ReasonCode::ConnectionRateExceeded).status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}
