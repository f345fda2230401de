//! Probes and runs: listing and describing probes, run now, suspend and
//! resume, uploading a component, run history and one run with its logs,
//! the live event stream of runs (server-sent events), and config reload.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use jiff::Timestamp;
use serde::Deserialize;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use utoipa::IntoParams;

use super::views::*;
use super::{Admin, ApiError, AppState, Path, Query};
use crate::daemon::Daemon;
use crate::daemon::dispatch::DispatchError;
use crate::daemon::probes::ActiveProbe;

/// Every probe as the API shows it.
pub(super) async fn probe_views(daemon: &Daemon) -> Result<Vec<ProbeView>, ApiError> {
    let store = daemon.store();
    let latest = store.latest_finished_runs().await?;
    let successes = store.last_successes().await?;
    let suspended = daemon
        .suspended()
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    let running = daemon.running();
    let now = Timestamp::now();
    Ok(daemon
        .probes()
        .iter()
        .map(|p| {
            let last_run = latest.iter().find(|r| r.probe == p.name);
            let last_success = successes
                .iter()
                .find(|(n, _)| *n == p.name)
                .map(|(_, t)| *t);
            view(
                daemon,
                p,
                last_run.map(RunView::from),
                last_success,
                suspended.get(&p.name).copied().unwrap_or(false),
                running.contains_key(&p.name),
                now,
            )
        })
        .collect())
}

fn view(
    daemon: &Daemon,
    p: &ActiveProbe,
    last_run: Option<RunView>,
    last_success: Option<Timestamp>,
    suspended: bool,
    running: bool,
    now: Timestamp,
) -> ProbeView {
    // Stale: scheduled, and no success within two periods (plus the run's own deadline).
    let stale = match (&p.schedule, p.enabled && !suspended) {
        (Some(s), true) => {
            let allowed = s
                .period_after(now)
                .map(|d| d * 2 + p.prepared.limits.timeout())
                .unwrap_or(Duration::from_secs(86_400));
            match last_success {
                Some(t) => now.duration_since(t).as_secs_f64() > allowed.as_secs_f64(),
                None => last_run.is_some(),
            }
        }
        _ => false,
    };
    ProbeView {
        name: p.name.clone(),
        version: p.prepared.info.version.clone(),
        origin: p.origin.describe(),
        description: p.prepared.info.description.clone(),
        enabled: p.enabled,
        suspended,
        schedule: p.schedule.as_ref().map(|s| s.source().to_string()),
        timezone: p.schedule.as_ref().map(|s| s.timezone().to_string()),
        next_run: daemon.next_run(&p.name).map(|t| t.to_string()),
        running,
        last_run,
        last_success: last_success.map(|t| t.to_string()),
        stale,
        rules: p.prepared.info.rules.len(),
    }
}

async fn one_view(
    daemon: &Daemon,
    name: &str,
) -> Result<(ProbeView, std::sync::Arc<ActiveProbe>), ApiError> {
    let p = daemon
        .probe(name)
        .ok_or_else(|| ApiError::not_found(format!("no probe {name}")))?;
    let v = probe_views(daemon)
        .await?
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no probe {name}")))?;
    Ok((v, p))
}

/// Every probe with its schedule, next and last run.
#[utoipa::path(get, path = "/api/v1/probes", tag = "probes",
    responses((status = 200, body = Vec<ProbeView>), (status = 401, body = ErrorBody)))]
pub async fn probes(State(app): State<AppState>) -> Result<Json<Vec<ProbeView>>, ApiError> {
    Ok(Json(probe_views(&app.daemon).await?))
}

/// One probe with its rules, grant, limits and config.
#[utoipa::path(get, path = "/api/v1/probes/{name}", tag = "probes",
    params(("name" = String, Path)),
    responses((status = 200, body = ProbeDetail), (status = 404, body = ErrorBody)))]
pub async fn probe(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ProbeDetail>, ApiError> {
    let (v, p) = one_view(&app.daemon, &name).await?;
    let prepared = &p.prepared;
    Ok(Json(ProbeDetail {
        probe: v,
        rule_list: prepared
            .info
            .rules
            .iter()
            .map(|r| RuleView::new(&name, r))
            .collect(),
        grants: serde_json::to_value(&prepared.grants).unwrap_or_default(),
        limits: serde_json::to_value(&prepared.limits).unwrap_or_default(),
        config: serde_json::from_str(&prepared.config).unwrap_or_default(),
    }))
}

/// Starts a run now (admin).
#[utoipa::path(post, path = "/api/v1/probes/{name}/run", tag = "probes",
    params(("name" = String, Path)),
    responses((status = 202, body = Queued), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn run_now(
    _: Admin,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    match app.daemon.run_now(&name).await {
        Ok(Some(run)) => Ok((StatusCode::ACCEPTED, Json(Queued { run: (&run).into() }))),
        Ok(None) => Err(ApiError::not_found(format!("no probe {name}"))),
        Err(e @ DispatchError::AlreadyRunning { .. }) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e @ DispatchError::ShuttingDown) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )),
        Err(DispatchError::Store(e)) => Err(e.into()),
    }
}

async fn set_suspended(
    app: &AppState,
    name: &str,
    suspended: bool,
) -> Result<Json<ProbeView>, ApiError> {
    let found = app
        .daemon
        .set_suspended(name, suspended)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    if !found {
        return Err(ApiError::not_found(format!("no probe {name}")));
    }
    // The scheduler applies it on its task; give it a moment to re-arm.
    tokio::task::yield_now().await;
    Ok(Json(one_view(&app.daemon, name).await?.0))
}

/// Suspends a probe's schedule (admin); it still runs on demand.
#[utoipa::path(post, path = "/api/v1/probes/{name}/suspend", tag = "probes",
    params(("name" = String, Path)),
    responses((status = 200, body = ProbeView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn suspend(
    _: Admin,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ProbeView>, ApiError> {
    set_suspended(&app, &name, true).await
}

/// Resumes a suspended probe's schedule from its next tick (admin).
#[utoipa::path(post, path = "/api/v1/probes/{name}/resume", tag = "probes",
    params(("name" = String, Path)),
    responses((status = 200, body = ProbeView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn resume(
    _: Admin,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ProbeView>, ApiError> {
    set_suspended(&app, &name, false).await
}

/// Uploads a probe component (admin; body `application/wasm`, at most
/// `uploads.max_bytes`). It is checked (a component of the `sonde:probe`
/// world whose `describe()` works) before it is kept, and becomes an
/// on-demand probe named by its `describe()`.
#[utoipa::path(post, path = "/api/v1/probes", tag = "probes",
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = ProbeView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn upload(
    State(app): State<AppState>,
    axum::extract::Extension(caller): axum::extract::Extension<super::Caller>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<ProbeView>), ApiError> {
    let limit = app.daemon.loaded().checked.config.uploads.max_bytes;
    // The body is read before anything is refused, so that the client gets
    // the answer instead of a connection closed under its upload.
    let body = read_capped(body, limit, "the component", "uploads.max_bytes").await;
    if caller.0 != super::Role::Admin {
        return Err(super::forbidden());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !matches!(
        content_type.split(';').next().map(str::trim),
        Some("application/wasm" | "application/octet-stream")
    ) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send the component as application/wasm, not {content_type:?}"),
        ));
    }
    let body = body?;
    use crate::daemon::UploadError as U;
    let probe = app.daemon.upload(&body).await.map_err(|e| match e {
        U::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        U::Invalid(_) => ApiError::bad_request(e.to_string()),
        U::Conflict(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        U::Io(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })?;
    tracing::info!(probe = %probe.name, bytes = body.len(), "component uploaded");
    Ok((
        StatusCode::CREATED,
        Json(one_view(&app.daemon, &probe.name).await?.0),
    ))
}

/// Reads a request body of at most `limit` bytes. A longer one is read on
/// (up to 64 MiB more, so the client sees the answer rather than a reset
/// connection) and refused with 413, naming `what` it is and the `setting`
/// that caps it.
pub(super) async fn read_capped(
    body: axum::body::Body,
    limit: usize,
    what: &str,
    setting: &str,
) -> Result<Bytes, ApiError> {
    let mut body = body.into_data_stream();
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        } else if seen > limit.saturating_add(64 << 20) {
            break;
        }
    }
    if seen > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} is larger than the {limit} bytes allowed ({setting})"),
        ));
    }
    Ok(Bytes::from(buf))
}

/// Run list parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunParams {
    probe: Option<String>,
    /// Page size, 1-1000 (default 50).
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "probes", params(RunParams),
    responses((status = 200, body = RunPageView), (status = 400, body = ErrorBody)))]
pub async fn runs(
    State(app): State<AppState>,
    Query(p): Query<RunParams>,
) -> Result<Json<RunPageView>, ApiError> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: {limit} is not between 1 and 1000"
        )));
    }
    let page = app
        .daemon
        .store()
        .runs(
            p.probe.as_deref().filter(|s| !s.is_empty()),
            limit,
            p.cursor.as_deref().filter(|c| !c.is_empty()),
        )
        .await?;
    Ok(Json(RunPageView {
        items: page.items.iter().map(RunView::from).collect(),
        next: page.next,
    }))
}

/// One run with its logs, denials and failure reason.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "probes",
    params(("id" = String, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = ErrorBody)))]
pub async fn run(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    app.daemon
        .store()
        .run(&id)
        .await?
        .map(|r| Json(RunDetail::from(&r)))
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))
}

/// Server-sent events: `event: run` with the run as JSON each time a run is
/// queued, starts or ends. Runs in progress are sent first.
#[utoipa::path(get, path = "/api/v1/events", tag = "probes",
    responses((status = 200, content_type = "text/event-stream", description = "run events")))]
pub async fn events(
    State(app): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let rx = app.daemon.subscribe();
    let current = app.daemon.store().unfinished_runs().await?;
    let initial = tokio_stream::iter(
        current
            .into_iter()
            .map(|r| Ok(run_event(&RunView::from(&r)))),
    );
    let live = BroadcastStream::new(rx).filter_map(|r| match r {
        Ok(run) => Some(Ok(run_event(&RunView::from(&run)))),
        // A slow reader missed events: tell it, so it reloads.
        Err(_) => Some(Ok(Event::default().event("lagged").data("{}"))),
    });
    Ok(
        Sse::new(initial.chain(live))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
    )
}

fn run_event(run: &RunView) -> Event {
    Event::default()
        .event("run")
        .id(format!("{}:{}", run.id, run.status))
        .data(serde_json::to_string(run).unwrap_or_default())
}

/// Reads the config again (admin); a bad config is refused and the old one
/// stays in force. Runs in flight are not touched.
#[utoipa::path(post, path = "/api/v1/reload", tag = "probes",
    responses((status = 200, body = Reloaded), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn reload(_: Admin, State(app): State<AppState>) -> Result<Json<Reloaded>, ApiError> {
    app.daemon
        .reload()
        .await
        .map_err(|e| ApiError::bad_request(format!("reload refused, the old config stays: {e}")))?;
    Ok(Json(Reloaded { reloaded: true }))
}
