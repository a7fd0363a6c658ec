//! The apps half of the JSON API: owners submit signed commands (registration, price,
//! payout account), which the section log orders; anyone reads an app and its payouts.

use std::sync::Arc;

use acre_ledger::apps::{apply_command, AppError};
use acre_ledger::{AccountId, Amount, AppId, SignedAppCommand};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{json_body, segment, Problem, PROBLEM};
use crate::farming::LogItem;
use crate::storage::Storage;

/// Payout lines per page.
const PAYOUTS_PAGE: usize = 100;

/// The app routes, over the node's storage service (which holds the farming handle).
pub fn routes(storage: Arc<Storage>) -> Router {
    Router::new()
        .route("/v1/apps", post(submit))
        .route("/v1/apps/{id}", get(show))
        .route("/v1/apps/{id}/payouts", get(payouts))
        .with_state(storage)
}

/// A command accepted for ordering.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    /// The app it is for.
    #[schema(value_type = String)]
    pub app: AppId,
    /// `proposed`: it is in the section log's queue; `GET /v1/apps/{id}` shows it once ordered.
    pub status: String,
}

impl From<AppError> for Problem {
    fn from(error: AppError) -> Self {
        let (status, code) = match error {
            AppError::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_signature"),
            AppError::Exists => (StatusCode::CONFLICT, "app_exists"),
            AppError::Unknown => (StatusCode::NOT_FOUND, "unknown_app"),
            AppError::Nonce { .. } => (StatusCode::CONFLICT, "stale_nonce"),
        };
        Problem::new(status, code, error.to_string())
    }
}

/// Submits an owner's signed command. It is checked against the apps as this node knows
/// them (so a forged, replayed or out-of-order one is refused at once) and proposed to the
/// section log, which applies it once, in order with the payments.
#[utoipa::path(post, path = "/v1/apps", tag = "apps", request_body(content = Object, description = "A signed app command"),
    responses((status = 202, description = "Proposed to the section log", body = Submitted),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 404, description = "A change to an app that does not exist", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The app exists already, or the nonce is not the next", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Not signed by the owner, or impossible fields", body = Problem, content_type = PROBLEM)))]
async fn submit(
    State(storage): State<Arc<Storage>>,
    body: Result<Json<SignedAppCommand>, JsonRejection>,
) -> Result<(StatusCode, Json<Submitted>), Problem> {
    let command = json_body(body)?;
    let mut apps = storage.farming().view().state.map(|state| state.apps().clone()).unwrap_or_default();
    let app = apply_command(&mut apps, &command)?;
    storage.propose(LogItem::App(command)).await;
    Ok((StatusCode::ACCEPTED, Json(Submitted { app, status: "proposed".into() })))
}

/// An app as the section log says.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppView {
    /// Its id: the hash of owner and name.
    #[schema(value_type = String)]
    pub id: AppId,
    /// Its owner.
    pub owner: AccountId,
    /// Its name.
    pub name: String,
    /// Where its earnings go.
    pub payout: AccountId,
    /// What one upload through it costs, on top of the store cost.
    pub price_per_put: Amount,
    /// The nonce the owner's next command must carry.
    pub next_nonce: u64,
    /// Fees collected this epoch, paid out when it closes.
    pub unpaid_fees: Amount,
    /// Uses agreed in the last closed epoch.
    pub usage_last_epoch: u64,
    /// Everything paid to it so far.
    pub lifetime_earnings: Amount,
}

fn app_id(id: Result<Path<String>, PathRejection>) -> Result<AppId, Problem> {
    segment(id)?.parse().map_err(|_| Problem::new(StatusCode::BAD_REQUEST, "invalid_app", "an app id is 64 hex digits"))
}

/// An app: owner, payout account, price, fees waiting, use, lifetime earnings.
#[utoipa::path(get, path = "/v1/apps/{id}", tag = "apps",
    params(("id" = String, Path, description = "The app's id (hex)")),
    responses((status = 200, description = "The app", body = AppView),
        (status = 400, description = "Not an app id", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such app", body = Problem, content_type = PROBLEM)))]
async fn show(
    State(storage): State<Arc<Storage>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<AppView>, Problem> {
    let id = app_id(id)?;
    let view = storage.farming().view();
    let unknown = || Problem::new(StatusCode::NOT_FOUND, "unknown_app", format!("no app {id} is registered"));
    let state = view.state.ok_or_else(unknown)?;
    let app = state.apps().get(&id).ok_or_else(unknown)?;
    let usage_last_epoch = view
        .epochs
        .last()
        .and_then(|outcome| outcome.record.apps.iter().find(|item| item.app == id))
        .map_or(0, |item| item.usage);
    Ok(Json(AppView {
        id,
        owner: app.owner,
        name: app.name.clone(),
        payout: app.payout,
        price_per_put: app.price_per_put,
        next_nonce: app.next_nonce,
        unpaid_fees: app.unpaid_fees,
        usage_last_epoch,
        lifetime_earnings: app.lifetime_earnings,
    }))
}

/// `GET /v1/apps/{id}/payouts` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PayoutsQuery {
    /// Epochs after this one (the previous page's `next_cursor`).
    pub cursor: Option<u64>,
}

/// One epoch's payout to an app.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PayoutLine {
    /// The epoch.
    pub epoch: u64,
    /// Where it went.
    pub payout: AccountId,
    /// Fees its users paid.
    pub fees: Amount,
    /// Uses a quorum of elders agreed on.
    pub usage: u64,
    /// Its part of the apps' share of the emission.
    pub usage_share: Amount,
    /// `fees + usage_share`.
    pub amount: Amount,
}

/// A page of an app's payouts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PayoutsPage {
    /// Oldest first.
    pub payouts: Vec<PayoutLine>,
    /// The cursor of the next page, if there is more.
    pub next_cursor: Option<u64>,
}

/// An app's payouts, epoch by epoch, itemised into fees and its share of use.
#[utoipa::path(get, path = "/v1/apps/{id}/payouts", tag = "apps",
    params(("id" = String, Path, description = "The app's id (hex)"), PayoutsQuery),
    responses((status = 200, description = "A page of payouts", body = PayoutsPage),
        (status = 400, description = "Not an app id", body = Problem, content_type = PROBLEM)))]
async fn payouts(
    State(storage): State<Arc<Storage>>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<PayoutsQuery>, QueryRejection>,
) -> Result<Json<PayoutsPage>, Problem> {
    let id = app_id(id)?;
    let Query(query) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let after = query.cursor.unwrap_or(0);
    let view = storage.farming().view();
    let mut lines = view.epochs.iter().filter(|outcome| outcome.record.epoch > after).filter_map(|outcome| {
        let item = outcome.record.apps.iter().find(|item| item.app == id)?;
        Some(PayoutLine {
            epoch: outcome.record.epoch,
            payout: item.payout,
            fees: item.fees,
            usage: item.usage,
            usage_share: item.usage_share,
            amount: item.amount,
        })
    });
    let payouts: Vec<PayoutLine> = lines.by_ref().take(PAYOUTS_PAGE).collect();
    let next_cursor = lines.next().and(payouts.last().map(|line| line.epoch));
    Ok(Json(PayoutsPage { payouts, next_cursor }))
}
