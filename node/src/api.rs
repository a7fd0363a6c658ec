//! The JSON API under `/v1`. Every refusal is `application/problem+json` with a stable
//! `code`; user errors are 4xx, never a panic or a 500.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use acre_ledger::store::{RocksStore, Store};
use acre_ledger::{
    AccountId, Amount, Certificate, CertificateBuilder, Confirmation, Digest, DurableElder, HistoryEntry, LedgerError,
    SignedOrder,
};
use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use tower_http::timeout::TimeoutLayer;

/// History entries per page when the client does not say.
const DEFAULT_PAGE: usize = 50;
/// Most history entries per page.
const MAX_PAGE: usize = 500;

/// The ledger as the API shares it. Handlers use it only through `with_ledger`, on a
/// blocking thread, since its calls read and sync the disk.
pub type SharedLedger = Arc<Mutex<DurableElder<RocksStore>>>;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The stable machine-readable code.
    pub code: String,
}

impl Problem {
    /// A problem with `status`, stable `code` and a `detail` for this occurrence.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:acre:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
        }
    }

    fn internal(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }
}

impl From<LedgerError> for Problem {
    fn from(error: LedgerError) -> Self {
        let status = match &error {
            LedgerError::Storage { .. } => StatusCode::SERVICE_UNAVAILABLE,
            LedgerError::UnknownAccount { .. } => StatusCode::NOT_FOUND,
            LedgerError::ConflictingOrder { .. } | LedgerError::GenesisConflict => StatusCode::CONFLICT,
            error if error.is_retryable() => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let detail = match &error {
            // The store's own message names files and internals; it goes to the log instead.
            LedgerError::Storage { message } => {
                tracing::error!(%message, "ledger store failed");
                "the node's store failed; nothing was acknowledged, so the request may be retried".to_owned()
            }
            error => error.to_string(),
        };
        Problem::new(status, error.code(), detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response()
    }
}

/// Limits the API enforces on every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body read, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take.
    pub timeout: Duration,
}

/// The API's routes over `ledger`, with Prometheus figures from `metrics` at `/metrics`.
pub fn router(ledger: SharedLedger, limits: Limits, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(move || std::future::ready(metrics.render())))
        .route("/v1/health", get(health))
        .route("/v1/accounts/{address}", get(account))
        .route("/v1/accounts/{address}/history", get(history))
        .route("/v1/section", get(section))
        .route("/v1/orders", post(submit_order))
        .route("/v1/certificates", post(submit_certificate))
        .route("/v1/transfers/{id}", get(transfer))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        // Enforced by the body extractors, so an oversized body is refused as a problem.
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.timeout))
        .layer(axum::middleware::map_response(timeout_as_problem))
        .with_state(ledger)
}

/// `GET /v1/health`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Health {
    /// "ok" while the ledger answers.
    pub status: String,
    /// This node's id.
    pub node: AccountId,
    /// Accounts the ledger holds.
    pub accounts: usize,
    /// The ledger's state hash, to compare with other elders.
    pub state_hash: String,
}

/// `GET /v1/accounts/{address}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccountView {
    /// The account.
    pub address: AccountId,
    /// Credits held.
    pub balance: Amount,
    /// The sequence its next order must use.
    pub next_sequence: u64,
    /// The order this node voted for at that sequence, not yet certified.
    pub pending_order: Option<SignedOrder>,
}

/// `GET /v1/accounts/{address}/history`.
#[derive(Debug, Serialize, Deserialize)]
pub struct HistoryPage {
    /// Entries from the cursor on, oldest first.
    pub entries: Vec<HistoryEntry>,
    /// Cursor of the next page, absent on the last one.
    pub next_cursor: Option<String>,
}

/// Query of a history page.
#[derive(Debug, Deserialize)]
struct HistoryQuery {
    cursor: Option<u64>,
    limit: Option<usize>,
}

/// Runs `work` on the ledger on a blocking thread: ledger calls read and sync the disk and
/// must not stall the async workers that serve other requests.
async fn with_ledger<T: Send + 'static>(
    ledger: SharedLedger,
    work: impl FnOnce(&mut DurableElder<RocksStore>) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let mut elder =
            ledger.lock().map_err(|_| Problem::internal("the ledger failed while handling an earlier request"))?;
        let result = work(&mut elder);
        metrics::histogram!("acre_ledger_call_seconds").record(started.elapsed().as_secs_f64());
        result
    })
    .await
    .map_err(|_| Problem::internal("the ledger task failed"))?
}

/// A path segment, or a problem if it is not one (e.g. not UTF-8).
fn segment(path: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    path.map(|Path(text)| text).map_err(|r| Problem::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text()))
}

fn parse_address(path: Result<Path<String>, PathRejection>) -> Result<AccountId, Problem> {
    let text = segment(path)?;
    text.parse().map_err(|error| Problem::new(StatusCode::BAD_REQUEST, "invalid_address", format!("{error}")))
}

async fn health(State(ledger): State<SharedLedger>) -> Result<Json<Health>, Problem> {
    with_ledger(ledger, |elder| {
        let state = elder.state();
        Ok(Json(Health {
            status: "ok".into(),
            node: state.id(),
            accounts: state.account_count(),
            state_hash: state.state_hash().to_string(),
        }))
    })
    .await
}

async fn account(
    State(ledger): State<SharedLedger>,
    address: Result<Path<String>, PathRejection>,
) -> Result<Json<AccountView>, Problem> {
    let address = parse_address(address)?;
    with_ledger(ledger, move |elder| {
        let state = elder.state();
        let account = state.account(&address).ok_or(LedgerError::UnknownAccount { account: address })?;
        Ok(Json(AccountView {
            address,
            balance: account.balance,
            next_sequence: account.next_sequence,
            pending_order: state.pending(&address).map(|lock| lock.order.clone()),
        }))
    })
    .await
}

async fn history(
    State(ledger): State<SharedLedger>,
    address: Result<Path<String>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<HistoryPage>, Problem> {
    let address = parse_address(address)?;
    let Query(query) =
        query.map_err(|error| Problem::new(StatusCode::BAD_REQUEST, "invalid_query", error.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        let detail = format!("limit must be between 1 and {MAX_PAGE}");
        return Err(Problem::new(StatusCode::BAD_REQUEST, "invalid_query", detail));
    }
    let from = query.cursor.unwrap_or(0);
    with_ledger(ledger, move |elder| {
        let account = elder.state().account(&address).ok_or(LedgerError::UnknownAccount { account: address })?;
        let entries = elder.history(&address, from, limit)?;
        let next = from.saturating_add(entries.len() as u64);
        let next_cursor = (next < account.history_len).then(|| next.to_string());
        Ok(Json(HistoryPage { entries, next_cursor }))
    })
    .await
}

/// `GET /v1/section`: the elders a client checks certificates against.
#[derive(Debug, Serialize, Deserialize)]
pub struct SectionView {
    /// This node's id.
    pub node: AccountId,
    /// Whether this node is one of the elders.
    pub role: String,
    /// The elders' ids.
    pub elders: Vec<AccountId>,
    /// Votes a certificate needs.
    pub quorum: usize,
}

/// A certified transfer: the answer to `POST /v1/orders` and `GET /v1/transfers/{id}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TransferView {
    /// The certificate's id (its order's digest).
    pub id: Digest,
    /// The certificate.
    pub certificate: Certificate,
}

/// A JSON body, or a problem saying why it is not one (too large, malformed, wrong shape).
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    body.map(|Json(value)| value).map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "invalid_json" };
        Problem::new(status, code, rejection.body_text())
    })
}

async fn section(State(ledger): State<SharedLedger>) -> Result<Json<SectionView>, Problem> {
    with_ledger(ledger, |elder| {
        let state = elder.state();
        let committee = state.committee();
        let node = state.id();
        let role = if committee.contains(&node) { "elder" } else { "member" };
        let elders: Vec<AccountId> = committee.members().copied().collect();
        Ok(Json(SectionView { node, role: role.into(), elders, quorum: committee.quorum() }))
    })
    .await
}

/// Votes on the order and, once a quorum of votes is in, applies the certificate and
/// returns it. Safe to retry: a repeated order gets the same votes and the same
/// certificate. Until the elder network lands only this node's vote is gathered, so a
/// section of more than one elder answers `no_quorum`.
async fn submit_order(
    State(ledger): State<SharedLedger>,
    body: Result<Json<SignedOrder>, JsonRejection>,
) -> Result<Json<TransferView>, Problem> {
    let order = json_body(body)?;
    let answer = with_ledger(ledger, move |elder| {
        let state = elder.state();
        if !state.committee().contains(&state.id()) {
            // Voting here would lock the sequence with a vote no certificate can use.
            let detail = "this node is not an elder; send orders to an elder";
            return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_an_elder", detail));
        }
        let vote = elder.handle_order(&order)?;
        let mut builder = CertificateBuilder::new(elder.state().committee().clone(), order.order.clone());
        let certificate = builder.add(&vote)?.ok_or_else(|| {
            let quorum = elder.state().committee().quorum();
            let detail = format!("this node voted, but {quorum} votes are needed and no other elder is reachable");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "no_quorum", detail)
        })?;
        elder.handle_certificate(&certificate)?;
        Ok(Json(TransferView { id: certificate.id(), certificate }))
    })
    .await;
    count("acre_orders_total", &answer);
    answer
}

async fn submit_certificate(
    State(ledger): State<SharedLedger>,
    body: Result<Json<Certificate>, JsonRejection>,
) -> Result<Json<Confirmation>, Problem> {
    let certificate = json_body(body)?;
    let answer = with_ledger(ledger, move |elder| Ok(Json(elder.handle_certificate(&certificate)?))).await;
    count("acre_certificates_total", &answer);
    answer
}

async fn transfer(
    State(ledger): State<SharedLedger>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TransferView>, Problem> {
    let id: Digest = segment(id)?
        .parse()
        .map_err(|error| Problem::new(StatusCode::BAD_REQUEST, "invalid_id", format!("{error}")))?;
    with_ledger(ledger, move |elder| {
        let certificate =
            elder.store().certificate(&id).map_err(LedgerError::from)?.ok_or_else(|| {
                Problem::new(StatusCode::NOT_FOUND, "unknown_transfer", format!("no transfer {id} here"))
            })?;
        Ok(Json(TransferView { id, certificate }))
    })
    .await
}

/// The timeout layer answers with a bare status; give it a problem document like every
/// other refusal.
async fn timeout_as_problem(response: Response) -> Response {
    if response.status() == StatusCode::REQUEST_TIMEOUT && !response.headers().contains_key(header::CONTENT_TYPE) {
        return Problem::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request took longer than the node allows")
            .into_response();
    }
    response
}

/// Counts an answer by outcome: `ok` or the refusal's code.
fn count<T>(name: &'static str, answer: &Result<T, Problem>) {
    let result = match answer {
        Ok(_) => "ok".to_owned(),
        Err(problem) => problem.code.clone(),
    };
    metrics::counter!(name, "result" => result).increment(1);
}
