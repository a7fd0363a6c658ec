//! The storage half of the JSON API: quotes, chunk uploads and downloads, holders, and
//! what audits say of each farmer.

use std::sync::Arc;

use acre_ledger::{AccountId, AppId, Certificate};
use acre_proofs::{ChunkAddress, MAX_CHUNK_BYTES};
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{json_body, segment, Problem, PROBLEM};
use crate::storage::{FarmerView, Placed, Quote, Storage, StorageError};

/// Largest chunk upload: a 1 MiB chunk in base64, its payment and a long chunk list.
const CHUNK_BODY_BYTES: usize = 4 << 20;

/// The storage routes, over the node's storage service.
pub fn routes(storage: Arc<Storage>) -> Router {
    Router::new()
        .route("/v1/quote", get(quote))
        .route("/v1/chunks", post(put_chunk).layer(DefaultBodyLimit::max(CHUNK_BODY_BYTES)))
        .route("/v1/chunks/{address}", get(get_chunk))
        .route("/v1/chunks/{address}/holders", get(holders))
        .route("/v1/farmers/{node}", get(farmer))
        .with_state(storage)
}

impl From<StorageError> for Problem {
    fn from(error: StorageError) -> Self {
        let (status, code) = match &error {
            StorageError::InvalidChunk(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_chunk"),
            StorageError::PaymentRequired(_) => (StatusCode::PAYMENT_REQUIRED, "payment_required"),
            StorageError::InvalidCertificate(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_payment_certificate"),
            StorageError::Payment(payment) => (StatusCode::UNPROCESSABLE_ENTITY, payment.code()),
            StorageError::SectionFull => (StatusCode::INSUFFICIENT_STORAGE, "section_full"),
            StorageError::HolderFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, "holder_full"),
            StorageError::HoldersUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "holders_unavailable"),
            StorageError::UnknownChunk(_) => (StatusCode::NOT_FOUND, "unknown_chunk"),
            StorageError::UnknownFarmer(_) => (StatusCode::NOT_FOUND, "unknown_farmer"),
            StorageError::UnknownApp(_) => (StatusCode::NOT_FOUND, "unknown_app"),
            StorageError::Disk(message) => {
                tracing::error!(%message, "chunk storage failed");
                return Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage",
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
    let Query(query) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    Ok(Json(storage.quote(query.bytes, query.app)?))
}

/// `POST /v1/chunks`: a chunk and, unless the section holds it already, its payment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PutChunk {
    /// The chunk's bytes, base64 (standard alphabet, padded).
    pub content: String,
    /// The certified transfer to the section's pool that pays for this chunk.
    pub payment: Option<StorePayment>,
}

/// A store payment: its certificate, and the chunks its memo names.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StorePayment {
    /// The certified transfer.
    pub certificate: Certificate,
    /// Every chunk the payment is for, in the order its memo hashes them.
    pub chunks: Vec<ChunkEntry>,
}

/// A chunk named with its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChunkEntry {
    /// Its address (BLAKE3, hex).
    #[schema(value_type = String)]
    pub address: ChunkAddress,
    /// Its size in bytes.
    pub size: u64,
}

/// Stores a chunk on its 4 holders, each durably, before answering. Safe to retry; a
/// chunk the section holds already is not charged again.
#[utoipa::path(post, path = "/v1/chunks", tag = "storage", request_body = PutChunk,
    responses((status = 201, description = "Stored on its holders", body = Placed),
        (status = 200, description = "The section held it already; nothing charged", body = Placed),
        (status = 400, description = "Malformed JSON or base64", body = Problem, content_type = PROBLEM),
        (status = 402, description = "A new chunk without a payment", body = Problem, content_type = PROBLEM),
        (status = 413, description = "The body is too large", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Not a chunk, or the payment does not pay for it", body = Problem, content_type = PROBLEM),
        (status = 503, description = "Holders unreachable; retry", body = Problem, content_type = PROBLEM),
        (status = 507, description = "A holder or the section is full", body = Problem, content_type = PROBLEM)))]
async fn put_chunk(
    State(storage): State<Arc<Storage>>,
    body: Result<Json<PutChunk>, JsonRejection>,
) -> Result<(StatusCode, Json<Placed>), Problem> {
    let request = json_body(body)?;
    let content = base64::engine::general_purpose::STANDARD
        .decode(request.content.as_bytes())
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_content", format!("content is not base64: {e}")))?;
    if content.len() > MAX_CHUNK_BYTES {
        return Err(StorageError::InvalidChunk(format!("a chunk is at most {MAX_CHUNK_BYTES} bytes")).into());
    }
    let payment = request.payment.map(|payment| {
        let chunks = payment.chunks.iter().map(|entry| (entry.address, entry.size)).collect();
        (payment.certificate, chunks)
    });
    let placed = storage.put(content, payment).await.map_err(Problem::from);
    let result = match &placed {
        Ok(placed) if placed.already_stored => "already_stored".to_owned(),
        Ok(_) => "ok".to_owned(),
        Err(problem) => problem.code.clone(),
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
    let Query(query) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
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

/// `GET /v1/chunks/{address}/holders`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HoldersView {
    /// The chunk.
    #[schema(value_type = String)]
    pub address: ChunkAddress,
    /// Its size, if the section has it registered.
    pub size: Option<u64>,
    /// The members that must hold it, closest first.
    pub holders: Vec<HolderView>,
}

/// One holder of a chunk.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HolderView {
    /// The member.
    pub node: AccountId,
    /// Whether it says it holds the chunk (`null`: it did not answer).
    pub held: Option<bool>,
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
        .map_err(|error| Problem::new(StatusCode::BAD_REQUEST, "invalid_node", format!("{error}")))?;
    Ok(Json(storage.farmer(node)?))
}

fn chunk_address(address: Result<Path<String>, PathRejection>) -> Result<ChunkAddress, Problem> {
    segment(address)?
        .parse()
        .map_err(|error| Problem::new(StatusCode::BAD_REQUEST, "invalid_address", format!("{error}")))
}
