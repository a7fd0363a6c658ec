//! The farming half of the JSON API: closed epochs with their records and signatures,
//! farmers' statements, and the section's members as its agreed log says.

use std::sync::Arc;

use acre_ledger::{AccountId, Amount, Digest};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use acre_api::farming::{MemberView, MembersView, Statement};
use acre_api::{routes, Problem, ProblemCode, PROBLEM};

use crate::api::segment;
use crate::storage::Storage;
use acre_api::farming::{ElderSignatureView, EpochView};
use acre_core::log::statement;
use acre_core::EpochOutcome;

/// Most epochs one statement covers.
const STATEMENT_EPOCHS: u64 = 1000;

/// The farming routes, over the node's storage service (which holds the farming handle).
pub fn routes(storage: Arc<Storage>) -> Router {
    Router::new()
        .route(routes::EPOCH, get(epoch))
        .route(routes::STATEMENT, get(farmer_statement))
        .route(routes::MEMBERS, get(members))
        .with_state(storage)
}

fn view_of(outcome: &EpochOutcome) -> EpochView {
    EpochView {
        record: outcome.record.clone(),
        state_hash: outcome.state_hash,
        signatures: outcome
            .signatures
            .iter()
            .map(|(elder, signature)| ElderSignatureView { elder: *elder, signature: *signature })
            .collect(),
        log_items: outcome.log.len(),
    }
}

/// A closed epoch: its itemised record, the section state's hash after it and the
/// elders' signatures. `latest` names the last epoch closed.
#[utoipa::path(get, path = "/v1/epochs/{epoch}", tag = "farming",
    params(("epoch" = String, Path, description = "An epoch number, or `latest`")),
    responses((status = 200, description = "The epoch", body = EpochView),
        (status = 400, description = "Not an epoch number", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Not closed yet (or none has closed)", body = Problem, content_type = PROBLEM)))]
async fn epoch(
    State(storage): State<Arc<Storage>>,
    epoch: Result<Path<String>, PathRejection>,
) -> Result<Json<EpochView>, Problem> {
    let asked = segment(epoch)?;
    let view = storage.farming().view();
    let found = if asked == "latest" {
        view.epochs.last()
    } else {
        let number: u64 = asked.parse().map_err(|_| {
            Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidEpoch, "an epoch is a number or `latest`")
        })?;
        // Oldest first and in order, so a search finds it.
        view.epochs
            .binary_search_by_key(&number, |outcome| outcome.record.epoch)
            .ok()
            .and_then(|at| view.epochs.get(at))
    };
    let outcome =
        found.ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, ProblemCode::UnknownEpoch, "no such closed epoch"))?;
    let mut shown = view_of(outcome);
    // The list in memory keeps no logs; the count comes from the file.
    let epoch = outcome.record.epoch;
    shown.log_items = crate::blocking::blocking(|| storage.farming().outcome(epoch)).map_or(0, |full| full.log.len());
    Ok(Json(shown))
}

/// `GET /v1/farmers/{node}/statement` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StatementQuery {
    /// First epoch (default 1).
    pub from: Option<u64>,
    /// Last epoch (default: the last closed).
    pub to: Option<u64>,
}

/// Per closed epoch: the bytes and chunks a farmer proved to a quorum of elders, the
/// challenges this node's audits put to it by result, and its reward.
#[utoipa::path(get, path = "/v1/farmers/{node}/statement", tag = "farming", params(
        ("node" = AccountId, Path, description = "The farmer's node id"), StatementQuery),
    responses((status = 200, description = "The statement", body = Statement),
        (status = 400, description = "Not a node id, or a bad range", body = Problem, content_type = PROBLEM)))]
async fn farmer_statement(
    State(storage): State<Arc<Storage>>,
    node: Result<Path<String>, PathRejection>,
    query: Result<Query<StatementQuery>, QueryRejection>,
) -> Result<Json<Statement>, Problem> {
    let node: AccountId = segment(node)?
        .parse()
        .map_err(|error| Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidNode, format!("{error}")))?;
    let Query(query) =
        query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidQuery, e.body_text()))?;
    let view = storage.farming().view();
    let last = view.epochs.last().map_or(0, |outcome| outcome.record.epoch);
    let from = query.from.unwrap_or(1);
    let to = query.to.unwrap_or(last);
    if from > to.max(from) || to.saturating_sub(from) >= STATEMENT_EPOCHS {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            ProblemCode::InvalidRange,
            format!("from must not pass to, and a statement covers at most {STATEMENT_EPOCHS} epochs"),
        ));
    }
    let epochs = statement(&view.epochs, &node, from, to);
    let total_reward = epochs
        .iter()
        .try_fold(Amount::ZERO, |sum, line| sum.checked_add(line.reward))
        .ok_or_else(|| Problem::internal("rewards overflow the cap"))?;
    Ok(Json(Statement { node, epochs, total_reward }))
}

/// The section's members, their age and reward addresses, and its elders, as of the
/// last epoch close or membership change this node applied.
#[utoipa::path(get, path = "/v1/section/members", tag = "farming",
    responses((status = 200, description = "The members", body = MembersView),
        (status = 503, description = "The log is not loaded yet", body = Problem, content_type = PROBLEM)))]
async fn members(State(storage): State<Arc<Storage>>) -> Result<Json<MembersView>, Problem> {
    let state = storage.farming().view().state.ok_or_else(|| {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, ProblemCode::Starting, "the section log is loading")
    })?;
    let elders = state.elders();
    let members = state
        .members()
        .iter()
        .map(|(node, member)| MemberView {
            node: *node,
            age: member.age,
            reward_address: member.reward,
            elder: elders.contains(node),
            placement_name: member.name.map(Digest),
        })
        .collect();
    Ok(Json(MembersView {
        epoch: state.epoch(),
        state_hash: state.state_hash().map_err(|error| Problem::internal(error.to_string()))?,
        supply: state.supply(),
        pool: state.pool(),
        members,
    }))
}
