//! The apps half of the JSON API: owners submit signed commands (registration, price,
//! payout account), which the section log orders; anyone reads an app and its payouts.

use std::sync::Arc;

use acre_ledger::apps::apply_command;
use acre_ledger::economics::pool_account;
use acre_ledger::{AppId, LedgerError, SignedAppCommand};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use acre_api::apps::{AppView, PayoutLine, PayoutsPage, Submitted};
use acre_api::{routes, Problem, ProblemCode, PROBLEM};

use crate::api::{json_body, segment};
use crate::storage::Storage;
use acre_core::LogItem;

/// Payout lines per page.
const PAYOUTS_PAGE: usize = 100;

/// The app routes, over the node's storage service (which holds the farming handle).
pub fn routes(storage: Arc<Storage>) -> Router {
    Router::new()
        .route(routes::APPS, post(submit))
        .route(routes::APP, get(show))
        .route(routes::PAYOUTS, get(payouts))
        .with_state(storage)
}

/// Submits an owner's signed command. It is checked against the apps as this node knows
/// them (so a forged, replayed or out-of-order one is refused at once) and proposed to the
/// section log, which applies it once, in order with the payments.
#[utoipa::path(post, path = "/v1/apps", tag = "apps", request_body(content = Object, description = "A signed app command"),
    responses((status = 202, description = "Proposed to the section log", body = Submitted),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 404, description = "A change to an app that does not exist", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The app exists already, the nonce is not the next, or the section keeps as many apps as it may", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Not signed by the owner, impossible fields, or a registration without its certified fee", body = Problem, content_type = PROBLEM)))]
async fn submit(
    State(storage): State<Arc<Storage>>,
    body: Result<Json<SignedAppCommand>, JsonRejection>,
) -> Result<(StatusCode, Json<Submitted>), Problem> {
    let command = json_body(body)?;
    let network = storage.section().ledger().network();
    if command.command.network != network {
        return Err(LedgerError::WrongNetwork { expected: network, got: command.command.network }.into());
    }
    command.check_fee(&pool_account(""))?;
    if let Some(fee) = &command.fee {
        if let Some(Err(error)) = storage.section().committee().verify_all(vec![fee.clone()]).into_iter().next() {
            return Err(error.into());
        }
    }
    let mut apps = storage.farming().view().state.map(|state| state.apps().clone()).unwrap_or_default();
    let app = apply_command(&mut apps, &command)?;
    storage.propose(LogItem::App(command)).await;
    Ok((StatusCode::ACCEPTED, Json(Submitted { app, status: "proposed".into() })))
}

fn app_id(id: Result<Path<String>, PathRejection>) -> Result<AppId, Problem> {
    segment(id)?
        .parse()
        .map_err(|_| Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidApp, "an app id is 64 hex digits"))
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
    let unknown = || Problem::new(StatusCode::NOT_FOUND, ProblemCode::UnknownApp, format!("no app {id} is registered"));
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
        use_allowance: app.use_allowance,
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

/// An app's payouts, epoch by epoch, itemised into fees and its share of use. An epoch
/// whose line paid nothing (use counted while nothing paid through the app left it an
/// allowance) is in the epoch's record, not here.
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
    let Query(query) =
        query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidQuery, e.body_text()))?;
    let after = query.cursor.unwrap_or(0);
    let view = storage.farming().view();
    let mut lines = view.epochs.iter().filter(|outcome| outcome.record.epoch > after).filter_map(|outcome| {
        let item = outcome.record.apps.iter().find(|item| item.app == id && !item.amount.is_zero())?;
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
