//! What node agents send: their collectors' batches (events, per-minute
//! HTTP sums, each collector's state), one agent per node on a cluster,
//! written into the daemon's store as the in-process agent writes them.
//! An agent token (or an admin's) may send; the body is capped, must be
//! JSON, and is checked row by row before anything is written. A request
//! that names its agent process and number (`Sonde-Agent-Instance`,
//! `Sonde-Agent-Sequence`) and was stored already, its answer lost, is
//! answered again and not stored twice.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};

use super::control::read_capped;
use super::views::{BatchAccepted, ErrorBody};
use super::{ApiError, AppState, Caller, Role};
use crate::store::{AgentRequest, CollectorBatch};

/// The header naming the sending agent process (random per process).
pub const INSTANCE_HEADER: &str = "sonde-agent-instance";
/// The header numbering its requests that carry events, from 1.
pub const SEQUENCE_HEADER: &str = "sonde-agent-sequence";

/// The largest batch the daemon takes in one request (bytes of JSON). An
/// agent sends at most [`crate::agent::sink::REQUEST_BYTES`] per request.
pub const MAX_BATCH_BYTES: usize = 16 << 20;

/// Stores a node agent's batch in one transaction.
#[utoipa::path(post, path = "/api/v1/collectors/batches", tag = "collectors",
    request_body(content = Object, content_type = "application/json",
        description = "A CollectorBatch: `events`, `http` (per-minute sums) and `status` rows, as `sonde agent --daemon` sends them"),
    responses((status = 200, body = BatchAccepted), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn post_batch(
    State(app): State<AppState>,
    axum::extract::Extension(caller): axum::extract::Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<BatchAccepted>, ApiError> {
    let body = read_capped(
        body,
        MAX_BATCH_BYTES,
        "the batch",
        "the daemon's limit per request",
    )
    .await;
    if !matches!(caller.0, Role::Agent | Role::Admin) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this needs an agent or admin token; yours is a viewer token",
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("a batch is sent as application/json, not {content_type:?}"),
        ));
    }
    let request = agent_request(&headers)?;
    let batch: CollectorBatch = serde_json::from_slice(&body?)
        .map_err(|e| ApiError::bad_request(format!("not a collector batch: {e}")))?;
    if let Some(problem) = batch.problem() {
        return Err(ApiError::bad_request(format!(
            "invalid collector batch: {problem}"
        )));
    }
    let request = request.as_ref().map(|(instance, sequence)| AgentRequest {
        instance,
        sequence: *sequence,
    });
    let written = app
        .daemon
        .store()
        .write_agent_batch(&batch, request)
        .await?;
    tracing::debug!(
        events = batch.events.len(),
        http = batch.http.len(),
        status = batch.status.len(),
        duplicate = !written,
        "collector batch"
    );
    Ok(Json(BatchAccepted {
        events: batch.events.len(),
        http: batch.http.len(),
        status: batch.status.len(),
        duplicate: !written,
    }))
}

/// The agent process and request number the headers give: both or none.
fn agent_request(headers: &HeaderMap) -> Result<Option<(String, i64)>, ApiError> {
    let text = |name: &str| -> Result<Option<&str>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| ApiError::bad_request(format!("{name}: not text")))
            })
            .transpose()
    };
    match (text(INSTANCE_HEADER)?, text(SEQUENCE_HEADER)?) {
        (None, None) => Ok(None),
        (Some(instance), Some(sequence)) => {
            if instance.is_empty()
                || instance.len() > 64
                || !instance
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(ApiError::bad_request(format!(
                    "{INSTANCE_HEADER}: {instance:?} is not an agent name (1 to 64 letters, digits or -)"
                )));
            }
            let sequence = sequence
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{SEQUENCE_HEADER}: {sequence:?} is not a request number (1 or more)"
                    ))
                })?;
            Ok(Some((instance.to_string(), sequence)))
        }
        _ => Err(ApiError::bad_request(format!(
            "{INSTANCE_HEADER} and {SEQUENCE_HEADER} go together"
        ))),
    }
}
