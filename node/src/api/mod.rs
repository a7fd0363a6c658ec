//! The JSON API under `/v1`. Every refusal is `application/problem+json` with a stable
//! `code`; user errors are 4xx, never a panic or a 500.

pub mod apps;
pub mod dashboard;
pub mod farming;
pub mod storage;

use std::sync::Arc;
use std::time::Duration;

use acre_ledger::store::{RocksStore, Store};
use acre_ledger::{AccountId, Amount, Certificate, Confirmation, Digest, DurableElder, LedgerError, SignedOrder};
use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;

use acre_api::ledger::{
    AccountView, BalanceLine, CommitmentLine, ElderView, Health, HiddenView, HistoryPage, SectionView, SupplyAuditView,
    SupplyView, TransferView,
};
use acre_api::{routes, Problem, ProblemCode, PROBLEM};

use crate::ledger::LedgerStopped;
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
        hidden,
        section,
        submit_order,
        submit_certificate,
        transfer,
        supply,
        supply_audit,
        crate::api::storage::quote,
        crate::api::storage::post_payment,
        crate::api::storage::put_chunk,
        crate::api::storage::get_chunk,
        crate::api::storage::holders,
        crate::api::storage::farmer,
        crate::api::farming::epoch,
        crate::api::farming::farmer_statement,
        crate::api::farming::members,
        crate::api::apps::submit,
        crate::api::apps::show,
        crate::api::apps::payouts
    )
)]
pub struct ApiDoc;

impl From<LedgerStopped> for Problem {
    fn from(_: LedgerStopped) -> Self {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, ProblemCode::Unavailable, "the node is shutting down")
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
        .route(routes::METRICS, get(move || std::future::ready(metrics.render())))
        .route(routes::OPENAPI, get(|| async { Json(ApiDoc::openapi()) }))
        .route(routes::HEALTH, get(health))
        .route(routes::ACCOUNT, get(account))
        .route(routes::HISTORY, get(history))
        .route(routes::HIDDEN, get(hidden))
        .route(routes::SECTION, get(section))
        .route(routes::ORDERS, post(submit_order))
        .route(routes::CERTIFICATES, post(submit_certificate))
        .route(routes::TRANSFER, get(transfer))
        .route(routes::SUPPLY, get(supply))
        .route(routes::SUPPLY_AUDIT, get(supply_audit))
        .with_state(shared);
    ledger
        .merge(crate::api::farming::routes(Arc::clone(&storage)))
        .merge(crate::api::apps::routes(Arc::clone(&storage)))
        .merge(crate::api::dashboard::routes(Arc::clone(&storage)))
        .merge(crate::api::storage::routes(storage))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, ProblemCode::NotFound, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ProblemCode::MethodNotAllowed,
                "this endpoint does not take that method",
            )
        })
        // Enforced by the body extractors, so an oversized body is refused as a problem.
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.timeout))
        .layer(axum::middleware::map_response(timeout_as_problem))
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
    path.map(|Path(text)| text)
        .map_err(|r| Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidPath, r.body_text()))
}

fn parse_address(path: Result<Path<String>, PathRejection>) -> Result<AccountId, Problem> {
    let text = segment(path)?;
    text.parse().map_err(|error| Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidAddress, format!("{error}")))
}

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

/// The supply, with the invariant checked now: the public balances and the hidden value
/// add up to genesis plus minted, and the commitments sum to a commitment to that hidden
/// value with no blinding. A node whose ledger breaks it answers 500 and logs it, rather
/// than report a wrong figure.
#[utoipa::path(get, path = "/v1/supply", tag = "ledger",
    responses((status = 200, description = "Supply figures that satisfy the invariant", body = SupplyView),
        (status = 500, description = "The ledger breaks the supply invariant", body = Problem, content_type = PROBLEM)))]
async fn supply(State(section): State<Shared>) -> Result<Json<SupplyView>, Problem> {
    read(&section, |elder| {
        let state = elder.state();
        let genesis = state.genesis_record().map_or(Amount::ZERO, |record| record.total);
        let minted = state.minted();
        let audit = checked_audit(state)?;
        Ok(Json(SupplyView {
            genesis,
            minted,
            cap: Amount::MAX,
            circulating: audit.public,
            hidden: audit.hidden,
            commitment_sum: audit.commitment_sum,
            epochs: state.epochs().len(),
        }))
    })
    .await
}

/// The supply audit over this node's ledger, or a 500 (logged) if it fails.
fn checked_audit(state: &acre_ledger::ElderState) -> Result<acre_ledger::confidential::SupplyAudit, Problem> {
    let audit = state.audit().map_err(|error| Problem::internal(format!("the supply audit cannot run: {error}")))?;
    if !audit.holds {
        tracing::error!(?audit, "the supply invariant is broken");
        return Err(Problem::internal("the ledger's balances and commitments do not add up to genesis plus minted"));
    }
    Ok(audit)
}

/// Every public balance and commitment, with the node's own run of the audit: the data
/// `acre supply` checks the invariant from, without trusting this node's verdict.
#[utoipa::path(get, path = "/v1/supply/audit", tag = "ledger",
    responses((status = 200, description = "The audit's inputs and this node's result", body = SupplyAuditView)))]
async fn supply_audit(State(section): State<Shared>) -> Result<Json<SupplyAuditView>, Problem> {
    read(&section, |elder| {
        let state = elder.state();
        let audit = state.audit()?;
        let balances = state.balances().map(|(account, balance)| BalanceLine { account: *account, balance }).collect();
        let commitments = state
            .commitments()
            .map(|(account, commitment)| CommitmentLine { account: *account, commitment: *commitment })
            .collect();
        Ok(Json(SupplyAuditView {
            genesis: state.genesis_record().map_or(Amount::ZERO, |record| record.total),
            minted: state.minted(),
            balances,
            commitments,
            audit,
        }))
    })
    .await
}

#[utoipa::path(get, path = "/v1/accounts/{address}/hidden", tag = "ledger",
    params(("address" = AccountId, Path, description = "The account's address")),
    responses((status = 200, description = "The account's commitments and sealed openings", body = HiddenView),
        (status = 400, description = "Not an address", body = Problem, content_type = PROBLEM),
        (status = 404, description = "The account has never held credits", body = Problem, content_type = PROBLEM)))]
async fn hidden(
    State(section): State<Shared>,
    address: Result<Path<String>, PathRejection>,
) -> Result<Json<HiddenView>, Problem> {
    read_account(&section, address, |state, address, account| HiddenView {
        address,
        network: state.network(),
        next_sequence: account.next_sequence,
        spendable: state.hidden(&address),
        incoming: state.incoming(&address),
    })
    .await
}

/// Runs `view` over the account in the path, or answers why there is none (not an
/// address: 400; never held credits: 404).
async fn read_account<T: Send + 'static>(
    section: &Section,
    address: Result<Path<String>, PathRejection>,
    view: impl FnOnce(&acre_ledger::ElderState, AccountId, acre_ledger::AccountState) -> T + Send + 'static,
) -> Result<Json<T>, Problem> {
    let address = parse_address(address)?;
    read(section, move |elder| {
        let state = elder.state();
        let account = state.account(&address).ok_or(LedgerError::UnknownAccount { account: address })?;
        Ok(Json(view(state, address, account)))
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
    read_account(&section, address, |state, address, account| AccountView {
        address,
        balance: account.balance,
        next_sequence: account.next_sequence,
        pending_order: state.pending(&address).map(|lock| lock.order.clone()),
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
        query.map_err(|error| Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidQuery, error.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        let detail = format!("limit must be between 1 and {MAX_PAGE}");
        return Err(Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidQuery, detail));
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

/// A JSON body, or a problem saying why it is not one (too large, malformed, wrong shape).
pub(crate) fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    body.map(|Json(value)| value).map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            ProblemCode::PayloadTooLarge
        } else {
            ProblemCode::InvalidJson
        };
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
        network: section.ledger().network(),
        node,
        role: if section.votes_on_transfers() { "elder" } else { "member" }.into(),
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
        .map_err(|error| Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidId, format!("{error}")))?;
    read(&section, move |elder| {
        let certificate = elder.store().certificate(&id).map_err(LedgerError::from)?.ok_or_else(|| {
            Problem::new(StatusCode::NOT_FOUND, ProblemCode::UnknownTransfer, format!("no transfer {id} here"))
        })?;
        Ok(Json(TransferView { id, certificate }))
    })
    .await
}

/// The timeout layer answers with a bare status; give it a problem document like every
/// other refusal.
async fn timeout_as_problem(response: Response) -> Response {
    if response.status() == StatusCode::REQUEST_TIMEOUT && !response.headers().contains_key(header::CONTENT_TYPE) {
        return Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            ProblemCode::Timeout,
            "the request took longer than the node allows",
        )
        .into_response();
    }
    response
}

/// Counts an answer by outcome: `ok` or the refusal's code.
fn count<T>(name: &'static str, answer: &Result<T, Problem>) {
    let result = match answer {
        Ok(_) => "ok".to_owned(),
        Err(problem) => problem.code.as_str(),
    };
    metrics::counter!(name, "result" => result).increment(1);
}
