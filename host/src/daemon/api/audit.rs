//! What the API server's audit webhook sends (`--audit-webhook-config-file`
//! naming `https://<sonde>/api/v1/audit`, batch or blocking mode): an
//! `audit.k8s.io/v1` `EventList` per POST, stored as rows of the
//! `kube-audit` collector (see [`crate::kube_audit`]). An audit log's lines
//! (`--audit-log-format=json`) can be sent the same way as
//! `application/x-ndjson`. An audit token (or an admin's) may send; the body
//! is capped; every record is checked before any is stored; a batch sent
//! again stores nothing twice.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};

use super::control::read_capped;
use super::views::{AuditAccepted, ErrorBody};
use super::{ApiError, AppState, Caller, Role};

/// The largest body taken in one request. The API server sends at most
/// `--audit-webhook-batch-max-size` records (400 by default) per batch;
/// at `RequestResponse` level each may carry two objects.
pub const MAX_AUDIT_BYTES: usize = 32 << 20;

/// Stores a batch of the API server's audit records.
#[utoipa::path(post, path = "/api/v1/audit", tag = "collectors",
    request_body(content = Object, content_type = "application/json",
        description = "An audit.k8s.io/v1 EventList, as the API server's audit webhook sends it; or, as application/x-ndjson, an audit log's lines (one Event each)"),
    responses((status = 200, body = AuditAccepted), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn post_audit(
    State(app): State<AppState>,
    axum::extract::Extension(caller): axum::extract::Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<AuditAccepted>, ApiError> {
    let body = read_capped(
        body,
        MAX_AUDIT_BYTES,
        "the audit batch",
        "the daemon's limit per request",
    )
    .await;
    if !matches!(caller.0, Role::Audit | Role::Admin) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this needs an audit or admin token",
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let lines = match content_type.split(';').next().map(str::trim) {
        Some("application/json") => false,
        Some("application/x-ndjson" | "application/jsonl") => true,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "audit records are sent as application/json (an EventList) or \
                     application/x-ndjson (log lines), not {content_type:?}"
                ),
            ));
        }
    };
    let body = body?;
    let records = if lines {
        let text = std::str::from_utf8(&body)
            .map_err(|e| ApiError::bad_request(format!("the audit log is not UTF-8: {e}")))?;
        crate::kube_audit::parse_log_lines(text)
    } else {
        crate::kube_audit::parse_event_list(&body)
    }
    .map_err(|e| ApiError::bad_request(format!("invalid audit batch: {e}")))?;
    let rows: Vec<(String, crate::store::CollectorEventRow)> = records
        .into_iter()
        .map(|r| (format!("{}/{}", r.audit_id, r.stage), r.row))
        .collect();
    let stored = app
        .daemon
        .store()
        .write_keyed_events(
            crate::kube_audit::COLLECTOR,
            crate::kube_audit::SOURCE,
            &rows,
        )
        .await?
        .len();
    tracing::debug!(received = rows.len(), stored, "audit batch");
    Ok(Json(AuditAccepted {
        received: rows.len(),
        stored,
        duplicates: rows.len() - stored,
    }))
}
