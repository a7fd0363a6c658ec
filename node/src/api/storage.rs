//! The storage half of the JSON API: quotes, chunk uploads and downloads, holders, and
//! what audits say of each farmer.

use std::sync::Arc;

use acre_ledger::{AccountId, AppId, Digest};
use acre_proofs::{ChunkAddress, MAX_CHUNK_BYTES};
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use acre_api::storage::{AcceptedPayment, FarmerView, HolderView, HoldersView, Placed, Quote, StorePayment};
use acre_api::{routes, Problem, ProblemCode, PROBLEM};

use crate::api::{json_body, segment};
use crate::storage::{Storage, StorageError};

/// Largest chunk upload: the raw bytes of one chunk.
const CHUNK_BODY_BYTES: usize = MAX_CHUNK_BYTES;
/// Largest store payment: a certificate and a list of up to 65,536 chunks in JSON.
const PAYMENT_BODY_BYTES: usize = 16 << 20;

/// The storage routes, over the node's storage service.
pub fn routes(storage: Arc<Storage>) -> Router {
    Router::new()
        .route(routes::QUOTE, get(quote))
        .route(routes::PAYMENTS, post(post_payment).layer(DefaultBodyLimit::max(PAYMENT_BODY_BYTES)))
        .route(routes::CHUNK, get(get_chunk).put(put_chunk).layer(DefaultBodyLimit::max(CHUNK_BODY_BYTES)))
        .route(routes::HOLDERS, get(holders))
        .route(routes::FARMER, get(farmer))
        .with_state(storage)
}

impl From<StorageError> for Problem {
    fn from(error: StorageError) -> Self {
        let (status, code) = match &error {
            StorageError::InvalidChunk(_) => (StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::InvalidChunk),
            StorageError::AddressMismatch { .. } => (StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::AddressMismatch),
            StorageError::PaymentRequired(_) => (StatusCode::PAYMENT_REQUIRED, ProblemCode::PaymentRequired),
            StorageError::UnknownPayment(_) => (StatusCode::PAYMENT_REQUIRED, ProblemCode::UnknownPayment),
            StorageError::InvalidCertificate(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::InvalidPaymentCertificate)
            }
            StorageError::Payment(payment) => (StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::from(payment)),
            StorageError::SectionFull => (StatusCode::INSUFFICIENT_STORAGE, ProblemCode::SectionFull),
            StorageError::HolderFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, ProblemCode::HolderFull),
            StorageError::HoldersUnavailable(_) | StorageError::HolderUnpaid(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, ProblemCode::HoldersUnavailable)
            }
            StorageError::UnknownChunk(_) => (StatusCode::NOT_FOUND, ProblemCode::UnknownChunk),
            StorageError::UnknownFarmer(_) => (StatusCode::NOT_FOUND, ProblemCode::UnknownFarmer),
            StorageError::UnknownApp(_) => (StatusCode::NOT_FOUND, ProblemCode::UnknownApp),
            StorageError::Disk(message) => {
                tracing::error!(%message, "chunk storage failed");
                return Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ProblemCode::Storage,
                    "this node's disk failed; nothing was acknowledged, so the request may be retried",
                );
            }
        };
        Problem::new(status, code, error.to_string())
    }
}

/// `GET /v1/quote` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct QuoteQuery {
    /// Bytes to store.
    pub bytes: u64,
    /// The app the upload goes through (hex id), whose price is added.
    #[param(value_type = Option<String>)]
    pub app: Option<AppId>,
}

/// The section's price for storing `bytes` now, and where to pay it.
#[utoipa::path(get, path = "/v1/quote", tag = "storage", params(QuoteQuery),
    responses((status = 200, description = "The price (null when the section is full)", body = Quote),
        (status = 400, description = "No byte count", body = Problem, content_type = PROBLEM)))]
async fn quote(
    State(storage): State<Arc<Storage>>,
    query: Result<Query<QuoteQuery>, QueryRejection>,
) -> Result<Json<Quote>, Problem> {
    let Query(query) =
        query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidQuery, e.body_text()))?;
    Ok(Json(storage.quote(query.bytes, query.app)?))
}

/// Accepts a store payment once: checks its certificate, that it pays the section's
/// pool at least the honoured price for every chunk its memo lists, applies it here and
/// keeps its list. Each listed chunk can then be uploaded raw, naming the payment. Safe to
/// repeat.
#[utoipa::path(post, path = "/v1/payments", tag = "storage", request_body = StorePayment,
    responses((status = 200, description = "Accepted (now or before)", body = AcceptedPayment),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 413, description = "The body is too large", body = Problem, content_type = PROBLEM),
        (status = 422, description = "The payment does not pay for its chunks", body = Problem, content_type = PROBLEM),
        (status = 507, description = "The section is full", body = Problem, content_type = PROBLEM)))]
async fn post_payment(
    State(storage): State<Arc<Storage>>,
    body: Result<Json<StorePayment>, JsonRejection>,
) -> Result<Json<AcceptedPayment>, Problem> {
    let payment = json_body(body)?;
    let list: Vec<(ChunkAddress, u64)> = payment.chunks.iter().map(|entry| (entry.address, entry.size)).collect();
    let id = storage.accept_payment(payment.certificate, &list).await?;
    Ok(Json(AcceptedPayment { id, chunks: list.len() }))
}

/// `PUT /v1/chunks/{address}` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PutChunkQuery {
    /// The accepted store payment that lists this chunk (hex certificate id); not needed
    /// for a chunk the section holds already.
    #[param(value_type = Option<String>)]
    pub payment: Option<Digest>,
}

/// Stores a chunk, sent as its raw bytes, on its 4 holders (all at once), each durably,
/// before answering. A new chunk names the accepted store payment that lists it. Safe to
/// retry; a chunk the section holds already is not charged again.
#[utoipa::path(put, path = "/v1/chunks/{address}", tag = "storage",
    params(("address" = String, Path, description = "The chunk's address (hex): the BLAKE3 of its bytes"), PutChunkQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The chunk's bytes, at most 1 MiB"),
    responses((status = 201, description = "Stored on its holders", body = Placed),
        (status = 200, description = "The section held it already; nothing charged", body = Placed),
        (status = 400, description = "Not an address, or a malformed query", body = Problem, content_type = PROBLEM),
        (status = 402, description = "A new chunk without a payment, or one this node has not accepted", body = Problem, content_type = PROBLEM),
        (status = 413, description = "The body is too large", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Not a chunk, not the named address, or the payment does not list it", body = Problem, content_type = PROBLEM),
        (status = 503, description = "Holders unreachable; retry", body = Problem, content_type = PROBLEM),
        (status = 507, description = "A holder or the section is full", body = Problem, content_type = PROBLEM)))]
async fn put_chunk(
    State(storage): State<Arc<Storage>>,
    address: Result<Path<String>, PathRejection>,
    query: Result<Query<PutChunkQuery>, QueryRejection>,
    content: Bytes,
) -> Result<(StatusCode, Json<Placed>), Problem> {
    let address = chunk_address(address)?;
    let Query(query) =
        query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidQuery, e.body_text()))?;
    let placed = storage.put(address, content.to_vec(), query.payment).await.map_err(Problem::from);
    let result = match &placed {
        Ok(placed) if placed.already_stored => "already_stored".to_owned(),
        Ok(_) => "ok".to_owned(),
        Err(problem) => problem.code.as_str(),
    };
    metrics::counter!("acre_chunk_puts_total", "result" => result).increment(1);
    let placed = placed?;
    let status = if placed.already_stored { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(placed)))
}

/// The chunk's bytes, from this node or its holders, checked against its address.
#[utoipa::path(get, path = "/v1/chunks/{address}", tag = "storage",
    params(("address" = String, Path, description = "The chunk's address (hex)"), AppQuery),
    responses((status = 200, description = "The chunk", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Not an address", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No holder has it", body = Problem, content_type = PROBLEM)))]
async fn get_chunk(
    State(storage): State<Arc<Storage>>,
    address: Result<Path<String>, PathRejection>,
    query: Result<Query<AppQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let address = chunk_address(address)?;
    let Query(query) =
        query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidQuery, e.body_text()))?;
    let bytes = match query.app {
        Some(app) => storage.get_for_app(address, app).await?,
        None => storage.get(address).await?,
    };
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], Bytes::from(bytes)).into_response())
}

/// `GET /v1/chunks/{address}` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AppQuery {
    /// The app this read is for (hex id); it is metered for the app's share of rewards.
    #[param(value_type = Option<String>)]
    pub app: Option<AppId>,
}

/// The members that must hold the chunk, each asked whether it does.
#[utoipa::path(get, path = "/v1/chunks/{address}/holders", tag = "storage",
    params(("address" = String, Path, description = "The chunk's address (hex)")),
    responses((status = 200, description = "Its holders", body = HoldersView),
        (status = 400, description = "Not an address", body = Problem, content_type = PROBLEM)))]
async fn holders(
    State(storage): State<Arc<Storage>>,
    address: Result<Path<String>, PathRejection>,
) -> Result<Json<HoldersView>, Problem> {
    let address = chunk_address(address)?;
    let (size, holders) = storage.holders(address).await;
    let holders = holders.into_iter().map(|(node, held)| HolderView { node, held }).collect();
    Ok(Json(HoldersView { address, size, holders }))
}

/// What this node's audits say of a farmer: chunks it must hold, challenges by outcome,
/// the last one.
#[utoipa::path(get, path = "/v1/farmers/{node}", tag = "storage",
    params(("node" = AccountId, Path, description = "The farmer's node id")),
    responses((status = 200, description = "The farmer", body = FarmerView),
        (status = 400, description = "Not a node id", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Not a member of this section", body = Problem, content_type = PROBLEM)))]
async fn farmer(
    State(storage): State<Arc<Storage>>,
    node: Result<Path<String>, PathRejection>,
) -> Result<Json<FarmerView>, Problem> {
    let node: AccountId = segment(node)?
        .parse()
        .map_err(|error| Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidNode, format!("{error}")))?;
    Ok(Json(storage.farmer(node)?))
}

fn chunk_address(address: Result<Path<String>, PathRejection>) -> Result<ChunkAddress, Problem> {
    segment(address)?
        .parse()
        .map_err(|error| Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidAddress, format!("{error}")))
}
