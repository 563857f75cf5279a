//! `GET /api/v1/openapi.json`: the OpenAPI 3 description of the HTTP API,
//! hand-written in `openapi.json` beside this file and embedded at build
//! time.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::http::HttpState;

/// The description, as served.
pub const SPEC: &str = include_str!("openapi.json");

/// `GET /api/v1/openapi.json`
pub async fn spec(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        with_limits(state.web.config.poll_max_timeout_secs),
    )
}

/// The description with this server's limits filled in (the longest poll
/// `timeout` is configurable).
pub fn with_limits(poll_max_timeout: u64) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(SPEC) else {
        return SPEC.to_owned();
    };
    if let Some(params) = v["paths"]["/api/v1/poll"]["get"]["parameters"].as_array_mut() {
        for p in params {
            if p["name"] == "timeout" {
                p["schema"]["maximum"] = poll_max_timeout.into();
                p["schema"]["default"] = poll_max_timeout.min(30).into();
            }
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_is_json_with_every_route() {
        let v: serde_json::Value = serde_json::from_str(SPEC).expect("valid JSON");
        assert_eq!(v["openapi"].as_str().map(|s| &s[..2]), Some("3."));
        for path in [
            "/api/v1/publish",
            "/api/v1/retained",
            "/api/v1/stream",
            "/api/v1/poll",
            "/api/v1/clients",
            "/api/v1/clients/{id}",
            "/api/v1/subscriptions",
            "/api/v1/stats",
            "/metrics",
        ] {
            assert!(v["paths"].get(path).is_some(), "{path} described");
        }
        let v: serde_json::Value = serde_json::from_str(&with_limits(5)).expect("JSON");
        let timeout = &v["paths"]["/api/v1/poll"]["get"]["parameters"][2];
        assert_eq!(timeout["name"], "timeout");
        assert_eq!(timeout["schema"]["maximum"], 5);
    }
}
