//! The JSON API under `/v1`. Every refusal is `application/problem+json` with a stable
//! `code`; user errors are 4xx, never a panic or a 500.

use std::sync::Arc;
use std::time::Duration;

use acre_ledger::store::{RocksStore, Store};
use acre_ledger::{
    AccountId, Amount, Certificate, Confirmation, Digest, DurableElder, GatherError, HistoryEntry, LedgerError,
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
use utoipa::{OpenApi, ToSchema};

use crate::ledger_task::LedgerStopped;
use crate::section::Section;
use crate::storage::Storage;

/// History entries per page when the client does not say.
const DEFAULT_PAGE: usize = 50;
/// Most history entries per page.
const MAX_PAGE: usize = 500;

/// What the handlers share: the node's section (its ledger thread and network task).
pub type Shared = Arc<Section>;

/// The API's OpenAPI document, generated from the handlers and types below; committed as
/// `specs/openapi.json`, which a test keeps equal to it.
#[derive(OpenApi)]
#[openapi(
    info(title = "Acre node API", description = "Balances, transfers and the section, on every Acre node."),
    paths(
        health,
        account,
        history,
        section,
        submit_order,
        submit_certificate,
        transfer,
        supply,
        crate::storage_api::quote,
        crate::storage_api::put_chunk,
        crate::storage_api::get_chunk,
        crate::storage_api::holders,
        crate::storage_api::farmer,
        crate::farming_api::epoch,
        crate::farming_api::farmer_statement,
        crate::farming_api::members,
        crate::apps_api::submit,
        crate::apps_api::show,
        crate::apps_api::payouts
    )
)]
pub struct ApiDoc;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }
}

impl From<GatherError> for Problem {
    fn from(error: GatherError) -> Self {
        match error {
            GatherError::Refused(refusal) => refusal.into(),
            error @ GatherError::NoQuorum { .. } => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "no_quorum", format!("{error}; retry later"))
            }
        }
    }
}

impl From<LedgerStopped> for Problem {
    fn from(_: LedgerStopped) -> Self {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the node is shutting down")
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

/// The API's routes over the node's `storage` (and through it its section), with
/// Prometheus figures from `metrics` at `/metrics` and this API's description at
/// `/v1/openapi.json`.
pub fn router(storage: Arc<Storage>, limits: Limits, metrics: PrometheusHandle) -> Router {
    let shared = Arc::clone(storage.section());
    let ledger = Router::new()
        .route("/metrics", get(move || std::future::ready(metrics.render())))
        .route("/v1/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/v1/health", get(health))
        .route("/v1/accounts/{address}", get(account))
        .route("/v1/accounts/{address}/history", get(history))
        .route("/v1/section", get(section))
        .route("/v1/orders", post(submit_order))
        .route("/v1/certificates", post(submit_certificate))
        .route("/v1/transfers/{id}", get(transfer))
        .route("/v1/supply", get(supply))
        .with_state(shared);
    ledger
        .merge(crate::farming_api::routes(Arc::clone(&storage)))
        .merge(crate::apps_api::routes(Arc::clone(&storage)))
        .merge(crate::storage_api::routes(storage))
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
}

/// `GET /v1/health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// "ok" while the ledger answers.
    pub status: String,
    /// This node's id.
    pub node: AccountId,
    /// Accounts the ledger holds.
    pub accounts: usize,
    /// The ledger's state hash, to compare with other elders.
    pub state_hash: Digest,
    /// Peers connected now.
    pub peers: usize,
}

/// `GET /v1/accounts/{address}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

/// Runs `query` on the ledger thread, timing it.
async fn read<T: Send + 'static>(
    section: &Section,
    query: impl FnOnce(&DurableElder<RocksStore>) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let started = std::time::Instant::now();
    let answer = section.ledger().read(query).await?;
    metrics::histogram!("acre_ledger_call_seconds", "kind" => "read").record(started.elapsed().as_secs_f64());
    answer
}

/// A path segment, or a problem if it is not one (e.g. not UTF-8).
pub(crate) fn segment(path: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    path.map(|Path(text)| text).map_err(|r| Problem::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text()))
}

fn parse_address(path: Result<Path<String>, PathRejection>) -> Result<AccountId, Problem> {
    let text = segment(path)?;
    text.parse().map_err(|error| Problem::new(StatusCode::BAD_REQUEST, "invalid_address", format!("{error}")))
}

/// The media type of problem documents, as every refusal is answered.
pub(crate) const PROBLEM: &str = "application/problem+json";

#[utoipa::path(get, path = "/v1/health", tag = "node",
    responses((status = 200, description = "The node answers", body = Health),
        (status = 503, description = "The node is shutting down", body = Problem, content_type = PROBLEM)))]
async fn health(State(section): State<Shared>) -> Result<Json<Health>, Problem> {
    let peers = section.network().peers().await.map(|peers| peers.iter().filter(|p| p.connected).count());
    let (node, accounts, state_hash) = read(&section, |elder| {
        let state = elder.state();
        Ok((state.id(), state.account_count(), state.state_hash()))
    })
    .await?;
    Ok(Json(Health { status: "ok".into(), node, accounts, state_hash, peers: peers.unwrap_or(0) }))
}

/// `GET /v1/supply`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SupplyView {
    /// Credits created at genesis.
    pub genesis: Amount,
    /// Credits minted by epoch records since.
    pub minted: Amount,
    /// The most credits that can ever exist.
    pub cap: Amount,
    /// The sum of every balance; equals `genesis + minted`, checked on every call.
    pub circulating: Amount,
    /// Epoch records applied.
    pub epochs: usize,
}

/// The supply, with the invariant `sum of balances = genesis + minted` checked now: a
/// node whose ledger breaks it answers 500 and logs it, rather than report a wrong figure.
#[utoipa::path(get, path = "/v1/supply", tag = "ledger",
    responses((status = 200, description = "Supply figures that satisfy the invariant", body = SupplyView),
        (status = 500, description = "The ledger breaks the supply invariant", body = Problem, content_type = PROBLEM)))]
async fn supply(State(section): State<Shared>) -> Result<Json<SupplyView>, Problem> {
    read(&section, |elder| {
        let state = elder.state();
        let genesis = state.genesis_record().map_or(Amount::ZERO, |record| record.total);
        let minted = state.minted();
        let circulating = state.circulating().ok_or_else(|| Problem::internal("balances overflow the cap"))?;
        if genesis.checked_add(minted) != Some(circulating) {
            tracing::error!(%genesis, %minted, %circulating, "the supply invariant is broken");
            return Err(Problem::internal("the ledger's balances do not add up to genesis plus minted"));
        }
        Ok(Json(SupplyView { genesis, minted, cap: Amount::MAX, circulating, epochs: state.epochs().len() }))
    })
    .await
}

#[utoipa::path(get, path = "/v1/accounts/{address}", tag = "ledger",
    params(("address" = AccountId, Path, description = "The account's address")),
    responses((status = 200, description = "The account", body = AccountView),
        (status = 400, description = "Not an address", body = Problem, content_type = PROBLEM),
        (status = 404, description = "The account has never held credits", body = Problem, content_type = PROBLEM)))]
async fn account(
    State(section): State<Shared>,
    address: Result<Path<String>, PathRejection>,
) -> Result<Json<AccountView>, Problem> {
    let address = parse_address(address)?;
    read(&section, move |elder| {
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

#[utoipa::path(get, path = "/v1/accounts/{address}/history", tag = "ledger",
    params(("address" = AccountId, Path, description = "The account's address"),
        ("cursor" = Option<u64>, Query, description = "Where the page starts: a `next_cursor` from the page before"),
        ("limit" = Option<usize>, Query, description = "Entries per page, 1 to 500 (default 50)")),
    responses((status = 200, description = "A page of history, oldest first", body = HistoryPage),
        (status = 400, description = "Not an address, or a bad cursor or limit", body = Problem, content_type = PROBLEM),
        (status = 404, description = "The account has never held credits", body = Problem, content_type = PROBLEM)))]
async fn history(
    State(section): State<Shared>,
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
    read(&section, move |elder| {
        let account = elder.state().account(&address).ok_or(LedgerError::UnknownAccount { account: address })?;
        let entries = elder.history(&address, from, limit)?;
        let next = from.saturating_add(entries.len() as u64);
        let next_cursor = (next < account.history_len).then(|| next.to_string());
        Ok(Json(HistoryPage { entries, next_cursor }))
    })
    .await
}

/// `GET /v1/section`: the elders a client checks certificates against.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SectionView {
    /// The section's prefix of the XOR address space, in bits; empty while one section
    /// covers it all.
    pub prefix: String,
    /// This node's id.
    pub node: AccountId,
    /// "elder" if this node votes, else "member".
    pub role: String,
    /// This node's libp2p addresses.
    pub listen: Vec<String>,
    /// The elders.
    pub elders: Vec<ElderView>,
    /// Votes a certificate needs.
    pub quorum: usize,
}

/// One elder as this node sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ElderView {
    /// The elder's key.
    pub id: AccountId,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Addresses it is known at (none for this node itself: see `listen`).
    pub addresses: Vec<String>,
    /// Whether this node is connected to it now (always true for itself).
    pub connected: bool,
}

/// A certified transfer: the answer to `POST /v1/orders` and `GET /v1/transfers/{id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransferView {
    /// The certificate's id (its order's digest).
    pub id: Digest,
    /// The certificate.
    pub certificate: Certificate,
}

/// A JSON body, or a problem saying why it is not one (too large, malformed, wrong shape).
pub(crate) fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    body.map(|Json(value)| value).map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "invalid_json" };
        Problem::new(status, code, rejection.body_text())
    })
}

#[utoipa::path(get, path = "/v1/section", tag = "node",
    responses((status = 200, description = "The section's elders", body = SectionView),
        (status = 503, description = "The node is shutting down", body = Problem, content_type = PROBLEM)))]
async fn section(State(section): State<Shared>) -> Result<Json<SectionView>, Problem> {
    let unavailable = |_| Problem::from(LedgerStopped);
    let network = section.network();
    let peers = network.peers().await.map_err(unavailable)?;
    let listen = network.listen_addresses().await.map_err(unavailable)?;
    let node = section.me();
    let elders = section
        .elders()
        .iter()
        .map(|(id, peer_id)| {
            let known = peers.iter().find(|p| p.peer == *peer_id);
            ElderView {
                id: *id,
                peer_id: peer_id.to_string(),
                addresses: known.map(|p| p.addresses.iter().map(ToString::to_string).collect()).unwrap_or_default(),
                connected: *id == node || known.is_some_and(|p| p.connected),
            }
        })
        .collect();
    Ok(Json(SectionView {
        prefix: String::new(),
        node,
        role: if section.is_elder() { "elder" } else { "member" }.into(),
        listen: listen.iter().map(ToString::to_string).collect(),
        elders,
        quorum: section.committee().quorum(),
    }))
}

/// Gathers the elders' votes on the order and, once a quorum is in, applies the
/// certificate and returns it. Safe to retry: a repeated order gets the same votes and
/// the same certificate.
#[utoipa::path(post, path = "/v1/orders", tag = "ledger", request_body = SignedOrder,
    responses((status = 200, description = "Certified: the transfer is final", body = TransferView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 404, description = "The sender has never held credits", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Another order holds the sequence, or the sequence is not next yet", body = Problem, content_type = PROBLEM),
        (status = 413, description = "The body is too large", body = Problem, content_type = PROBLEM),
        (status = 422, description = "The order is invalid: signature, amount, balance, recipient", body = Problem, content_type = PROBLEM),
        (status = 503, description = "Too few elders answered; retry", body = Problem, content_type = PROBLEM)))]
async fn submit_order(
    State(section): State<Shared>,
    body: Result<Json<SignedOrder>, JsonRejection>,
) -> Result<Json<TransferView>, Problem> {
    let order = json_body(body)?;
    let answer = section
        .certify(order)
        .await
        .map(|certificate| Json(TransferView { id: certificate.id(), certificate }))
        .map_err(Problem::from);
    count("acre_orders_total", &answer);
    answer
}

/// Applies a certificate made elsewhere (a client that gathered the votes itself).
#[utoipa::path(post, path = "/v1/certificates", tag = "ledger", request_body = Certificate,
    responses((status = 200, description = "Applied, now or before", body = Confirmation),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Earlier certificates of the account are not applied here yet", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Not a valid certificate of this section", body = Problem, content_type = PROBLEM)))]
async fn submit_certificate(
    State(section): State<Shared>,
    body: Result<Json<Certificate>, JsonRejection>,
) -> Result<Json<Confirmation>, Problem> {
    let certificate = json_body(body)?;
    let answer = match section.accept(vec![certificate]).await {
        Ok(results) => match results.into_iter().next() {
            Some(result) => result.map(Json).map_err(Problem::from),
            None => Err(Problem::internal("the ledger gave no answer")),
        },
        Err(stopped) => Err(stopped.into()),
    };
    count("acre_certificates_total", &answer);
    answer
}

#[utoipa::path(get, path = "/v1/transfers/{id}", tag = "ledger",
    params(("id" = Digest, Path, description = "The certificate's id")),
    responses((status = 200, description = "The certified transfer", body = TransferView),
        (status = 400, description = "Not an id", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such transfer applied here", body = Problem, content_type = PROBLEM)))]
async fn transfer(
    State(section): State<Shared>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TransferView>, Problem> {
    let id: Digest = segment(id)?
        .parse()
        .map_err(|error| Problem::new(StatusCode::BAD_REQUEST, "invalid_id", format!("{error}")))?;
    read(&section, move |elder| {
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
