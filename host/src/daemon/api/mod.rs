//! The HTTP side of the daemon (axum): the JSON API under `/api/v1`, its
//! OpenAPI document (generated from the handlers' annotations), `/metrics`,
//! `/healthz`, `/readyz`, and the web UI. Bearer tokens from the config
//! carry a role (viewer reads, admin also writes, agent only sends its
//! node's collector data, audit only sends the API server's audit
//! records); errors are JSON with a fitting status, and a
//! malformed request is a 400 naming what was wrong.
//!
//! - `views`: the JSON shapes.
//! - `reads`: findings, rules, trends, the summary, report exports.
//! - `control`: probes, runs, run now, suspend, upload, reload, the event stream.
//! - `agents`: what node agents send (their collectors' batches).
//! - `audit`: what the API server's audit webhook sends.
//! - `rows`: a collector's rows (events, audit records, node events) for people.

mod agents;
mod audit;
mod control;
mod reads;
mod rows;
pub(crate) mod traffic;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use utoipa::OpenApi;

use self::views::{ErrorBody, ErrorDetail};
use super::Daemon;
use super::config::Role;
use super::report::ScoreCache;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub daemon: Daemon,
    pub score: Arc<ScoreCache>,
    /// Finding totals per filter and generation (valid while no run has
    /// finished since); concurrent requests for one wait for one count.
    pub totals: Arc<std::sync::Mutex<std::collections::HashMap<(String, u64), TotalCell>>>,
    /// Finding pages as sent (JSON), per query and generation: the same
    /// page is read from the store once until the next run finishes.
    pub pages: Arc<std::sync::Mutex<std::collections::HashMap<(String, u64), PageCell>>>,
}

/// One page's JSON, built once.
pub type PageCell = Arc<tokio::sync::OnceCell<bytes::Bytes>>;

/// One filter's total, counted once.
pub type TotalCell = Arc<tokio::sync::OnceCell<u64>>;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                status: self.status.as_u16(),
                message: self.message,
            },
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sonde\""),
            );
        }
        res
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::InvalidInput { .. } => ApiError::bad_request(e.to_string()),
            other => {
                tracing::error!("store: {other}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
            }
        }
    }
}

/// `Query` whose rejection is a JSON 400 naming the bad parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))
    }
}

/// `Path` whose rejection is a JSON 400.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::bad_request(format!("bad path: {}", e.body_text())))
    }
}

/// The caller's role, set by the auth layer.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Role);

/// Rejects callers that are not admin (403).
pub struct Admin;

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(Caller(Role::Admin)) => Ok(Admin),
            _ => Err(forbidden()),
        }
    }
}

/// The 403 of a viewer on an admin route.
pub(crate) fn forbidden() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "this needs an admin token; yours is a viewer token",
    )
}

/// Where an agent token may go: sending its node's collector data.
const AGENT_ROUTE: (&str, &str) = ("POST", "/api/v1/collectors/batches");

/// Where an audit token may go: sending the API server's audit records.
const AUDIT_ROUTE: (&str, &str) = ("POST", "/api/v1/audit");

/// Whether a caller with `role` may make this request at all (the handlers
/// check admin routes themselves): an agent token is for sending collector
/// data only (every node holds one, so it reads nothing), and an audit
/// token, which the API server's webhook config holds, for sending audit
/// records only.
fn role_may(role: Role, method: &axum::http::Method, path: &str) -> bool {
    match role {
        Role::Agent => (method.as_str(), path) == AGENT_ROUTE,
        Role::Audit => (method.as_str(), path) == AUDIT_ROUTE,
        Role::Viewer | Role::Admin => true,
    }
}

/// Compares SHA-256 digests so the time taken says nothing of the token.
fn same_secret(given: &str, secret: &str) -> bool {
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(secret.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Who a request is: admin when the daemon has no tokens, else the role of
/// the bearer token it carries; 401 without a valid one.
async fn authenticate(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let loaded = app.daemon.loaded();
    let tokens = loaded.tokens();
    let role = if tokens.is_empty() {
        Some(Role::Admin)
    } else {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        match given {
            None => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "this needs a bearer token (Authorization: Bearer TOKEN)",
                )
                .into_response();
            }
            Some(given) => tokens
                .iter()
                .find(|t| same_secret(given, &t.secret))
                .map(|t| {
                    tracing::debug!(token = %t.name, "authenticated");
                    t.role
                }),
        }
    };
    match role {
        Some(role) if !role_may(role, req.method(), req.uri().path()) => ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "an agent token may only send collector data ({} {})",
                AGENT_ROUTE.0, AGENT_ROUTE.1
            ),
        )
        .into_response(),
        Some(role) => {
            req.extensions_mut().insert(Caller(role));
            next.run(req).await
        }
        None => {
            ApiError::new(StatusCode::UNAUTHORIZED, "the bearer token is not valid").into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(app): State<AppState>) -> Response {
    if app.daemon.ready() && app.daemon.store().ping().await {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

async fn metrics(State(app): State<AppState>) -> Result<Response, ApiError> {
    let text = app.daemon.metrics().render(app.daemon.store()).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn api_fallback() -> ApiError {
    ApiError::not_found("no such API endpoint (see /api/v1/openapi.json)")
}

/// The OpenAPI document of every route under `/api/v1`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Sonde", description = "Sonde's daemon: probes, runs, findings, trends and reports."),
    paths(
        reads::whoami, reads::summary, reads::findings, reads::finding, reads::rules, reads::rule,
        reads::trends, reads::trends_svg, reads::report, reads::collectors, agents::post_batch,
        audit::post_audit, rows::collector_rows, traffic::traffic,
        control::probes, control::probe, control::run_now, control::suspend, control::resume,
        control::upload, control::runs, control::run, control::events, control::reload,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "findings", description = "Findings, rules, trends and reports"),
        (name = "probes", description = "Probes and their runs"),
        (name = "collectors", description = "The node collectors and their state per node"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

/// Every route.
pub fn router(daemon: Daemon) -> Router {
    let state = AppState {
        daemon,
        score: Arc::new(ScoreCache::default()),
        totals: Arc::default(),
        pages: Arc::default(),
    };
    let api = Router::new()
        .route("/whoami", get(reads::whoami))
        .route("/summary", get(reads::summary))
        .route("/findings", get(reads::findings))
        .route("/findings/{id}", get(reads::finding))
        .route("/rules", get(reads::rules))
        .route("/rules/{probe}/{rule}", get(reads::rule))
        .route("/trends", get(reads::trends))
        .route("/trends.svg", get(reads::trends_svg))
        .route("/report", get(reads::report))
        .route("/collectors", get(reads::collectors))
        .route("/collectors/{name}/rows", get(rows::collector_rows))
        .route("/traffic", get(traffic::traffic))
        .route(
            "/collectors/batches",
            post(agents::post_batch).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/audit",
            post(audit::post_audit).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/probes",
            get(control::probes)
                .post(control::upload)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/probes/{name}", get(control::probe))
        .route("/probes/{name}/run", post(control::run_now))
        .route("/probes/{name}/suspend", post(control::suspend))
        .route("/probes/{name}/resume", post(control::resume))
        .route("/runs", get(control::runs))
        .route("/runs/{id}", get(control::run))
        .route("/events", get(control::events))
        .route("/reload", post(control::reload))
        .fallback(api_fallback);
    let guarded = Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .merge(guarded)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(super::web::routes())
        .layer(middleware::from_fn(super::web::security_headers))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_agent_token_reaches_the_batches_route_only() {
        use super::{Role, role_may};
        use axum::http::Method;
        let batches = "/api/v1/collectors/batches";
        assert!(role_may(Role::Agent, &Method::POST, batches));
        assert!(!role_may(Role::Agent, &Method::GET, batches));
        for path in [
            "/api/v1/findings",
            "/api/v1/collectors",
            "/metrics",
            "/api/v1/whoami",
        ] {
            assert!(!role_may(Role::Agent, &Method::GET, path), "{path}");
        }
        assert!(!role_may(Role::Agent, &Method::POST, "/api/v1/reload"));
        assert!(!role_may(Role::Agent, &Method::POST, "/api/v1/audit"));
        // An audit token: the audit route only.
        assert!(role_may(Role::Audit, &Method::POST, "/api/v1/audit"));
        assert!(!role_may(Role::Audit, &Method::GET, "/api/v1/audit"));
        assert!(!role_may(Role::Audit, &Method::POST, batches));
        assert!(!role_may(Role::Audit, &Method::GET, "/api/v1/findings"));
        // The other roles are checked by the handlers.
        assert!(role_may(Role::Viewer, &Method::GET, "/api/v1/findings"));
        assert!(role_may(Role::Admin, &Method::POST, batches));
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(super::same_secret("abc", "abc"));
        assert!(!super::same_secret("abc", "abd"));
        assert!(!super::same_secret("", "abc"));
    }
}
