//! A node's JSON API as the wallet speaks it. Refusals come back as the node's problem
//! documents, kept apart from failures to reach the node at all.

use std::time::Duration;

use acre_api::apps::{AppView, PayoutsPage, Submitted};
use acre_api::farming::{MembersView, Statement};
use acre_api::ledger::{AccountView, HiddenView, HistoryPage, SectionView, SupplyAuditView, SupplyView, TransferView};
use acre_api::storage::{AcceptedPayment, FarmerView, HoldersView, Placed, Quote, StorePayment};
use acre_api::{routes, Problem, ProblemCode};
use acre_ledger::{AccountId, Digest, SignedOrder};
use acre_ledger::{AppId, SignedAppCommand};
use acre_proofs::ChunkAddress;
use serde::de::DeserializeOwned;

/// What went wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node answered with a refusal.
    #[error("{} ({})", .0.detail, .0.code)]
    Refused(Problem),
    /// The node could not be reached or did not answer in the API's language.
    #[error("node {url}: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// Why it failed.
        reason: String,
    },
}

/// A client of one node's API.
#[derive(Debug, Clone)]
pub struct NodeClient {
    base: String,
    http: reqwest::blocking::Client,
}

impl NodeClient {
    /// A client of the node at `base` (e.g. `http://127.0.0.1:7070`).
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let http = reqwest::blocking::Client::builder()
            // A chunk upload waits for 4 holders' synced writes.
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Unreachable { url: base.to_owned(), reason: e.to_string() })?;
        Ok(NodeClient { base: base.trim_end_matches('/').to_owned(), http })
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The account, or `None` if it has never held credits.
    pub fn account(&self, account: &AccountId) -> Result<Option<AccountView>, ClientError> {
        match self.get(&routes::account(account)) {
            Err(ClientError::Refused(problem)) if problem.code == ProblemCode::UnknownAccount => Ok(None),
            other => other.map(Some),
        }
    }

    /// A page of the account's history.
    pub fn history(&self, account: &AccountId, cursor: Option<&str>, limit: usize) -> Result<HistoryPage, ClientError> {
        let url = format!("{}{}", self.base, routes::history(account));
        let limit = limit.to_string();
        let mut query = vec![("limit", limit.as_str())];
        query.extend(cursor.map(|cursor| ("cursor", cursor)));
        let response = self.http.get(&url).query(&query).send();
        self.decode(&url, response)
    }

    /// A certified transfer by id, or `None` if the node has not applied it.
    pub fn transfer(&self, id: &Digest) -> Result<Option<TransferView>, ClientError> {
        match self.get(&routes::transfer(id)) {
            Err(ClientError::Refused(problem)) if problem.code == ProblemCode::UnknownTransfer => Ok(None),
            other => other.map(Some),
        }
    }

    /// The section's elders and quorum.
    pub fn section(&self) -> Result<SectionView, ClientError> {
        self.get(routes::SECTION)
    }

    /// Submits a signed order; the answer is its certificate.
    pub fn submit_order(&self, order: &SignedOrder) -> Result<TransferView, ClientError> {
        let url = format!("{}{}", self.base, routes::ORDERS);
        let response = self.http.post(&url).json(order).send();
        self.decode(&url, response)
    }

    /// The ledger's supply figures.
    pub fn supply(&self) -> Result<SupplyView, ClientError> {
        self.get(routes::SUPPLY)
    }

    /// Every public balance and commitment, to run the supply audit here.
    pub fn supply_audit(&self) -> Result<SupplyAuditView, ClientError> {
        self.get(routes::SUPPLY_AUDIT)
    }

    /// The account's commitments and sealed openings, or `None` if it never held credits.
    pub fn hidden(&self, account: &AccountId) -> Result<Option<HiddenView>, ClientError> {
        match self.get(&routes::hidden(account)) {
            Err(ClientError::Refused(problem)) if problem.code == ProblemCode::UnknownAccount => Ok(None),
            other => other.map(Some),
        }
    }

    /// The section's price for storing `bytes`.
    pub fn quote(&self, bytes: u64, app: Option<&AppId>) -> Result<Quote, ClientError> {
        match app {
            Some(app) => self.get(&format!("{}?bytes={bytes}&app={app}", routes::QUOTE)),
            None => self.get(&format!("{}?bytes={bytes}", routes::QUOTE)),
        }
    }

    /// Submits an owner's signed app command to the section log.
    pub fn submit_app(&self, command: &SignedAppCommand) -> Result<Submitted, ClientError> {
        let url = format!("{}{}", self.base, routes::APPS);
        let response = self.http.post(&url).json(command).send();
        self.decode(&url, response)
    }

    /// An app, or `None` if the section has no such app (yet).
    pub fn app(&self, app: &AppId) -> Result<Option<AppView>, ClientError> {
        match self.get(&routes::app(app)) {
            Ok(view) => Ok(Some(view)),
            Err(ClientError::Refused(problem)) if problem.code == ProblemCode::UnknownApp => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// A page of an app's payouts, after epoch `cursor`.
    pub fn app_payouts(&self, app: &AppId, cursor: Option<u64>) -> Result<PayoutsPage, ClientError> {
        match cursor {
            Some(cursor) => self.get(&format!("{}?cursor={cursor}", routes::payouts(app))),
            None => self.get(&routes::payouts(app)),
        }
    }

    /// Uploads a chunk (with its payment, unless the section holds it already).
    pub fn put_chunk(
        &self,
        address: &ChunkAddress,
        bytes: &[u8],
        payment: Option<&Digest>,
    ) -> Result<Placed, ClientError> {
        let url = match payment {
            Some(payment) => format!("{}{}?payment={payment}", self.base, routes::chunk(address)),
            None => format!("{}{}", self.base, routes::chunk(address)),
        };
        let response = self
            .http
            .put(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec())
            .send();
        self.decode(&url, response)
    }

    /// Has the node accept a store payment, so the chunks it lists can be uploaded naming
    /// it (safe to repeat).
    pub fn accept_payment(&self, payment: &StorePayment) -> Result<AcceptedPayment, ClientError> {
        let url = format!("{}{}", self.base, routes::PAYMENTS);
        let response = self.http.post(&url).json(payment).send();
        self.decode(&url, response)
    }

    /// A chunk's bytes as the node sends them (the caller checks them against the address).
    pub fn chunk(&self, address: &ChunkAddress, app: Option<&AppId>) -> Result<Vec<u8>, ClientError> {
        let url = match app {
            Some(app) => format!("{}{}?app={app}", self.base, routes::chunk(address)),
            None => format!("{}{}", self.base, routes::chunk(address)),
        };
        let unreachable = |reason: String| ClientError::Unreachable { url: url.clone(), reason };
        let response = self.http.get(&url).send().map_err(|e| unreachable(e.to_string()))?;
        if response.status().is_success() {
            return Ok(response.bytes().map_err(|e| unreachable(e.to_string()))?.to_vec());
        }
        let status = response.status();
        match response.json::<Problem>() {
            Ok(problem) => Err(ClientError::Refused(problem)),
            Err(_) => Err(unreachable(format!("answered {status} without a problem document"))),
        }
    }

    /// The chunk's holders, and its size if the section holds it.
    pub fn holders(&self, address: &ChunkAddress) -> Result<HoldersView, ClientError> {
        self.get(&routes::holders(address))
    }

    /// What the node's audits say of a farmer.
    pub fn farmer(&self, node: &AccountId) -> Result<FarmerView, ClientError> {
        self.get(&routes::farmer(node))
    }

    /// A farmer's statement over closed epochs (`from`/`to` default to all).
    pub fn statement(&self, node: &AccountId, from: Option<u64>, to: Option<u64>) -> Result<Statement, ClientError> {
        let mut path = format!("{}?", routes::statement(node));
        if let Some(from) = from {
            path.push_str(&format!("from={from}&"));
        }
        if let Some(to) = to {
            path.push_str(&format!("to={to}"));
        }
        self.get(&path)
    }

    /// The section's members by its agreed log.
    pub fn members(&self) -> Result<MembersView, ClientError> {
        self.get(routes::MEMBERS)
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self.http.get(&url).send();
        self.decode(&url, response)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        url: &str,
        response: reqwest::Result<reqwest::blocking::Response>,
    ) -> Result<T, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable { url: url.to_owned(), reason };
        let response = response.map_err(|error| {
            let reason = if error.is_connect() {
                "nothing answers there: is the node running? (pick another with --node or ACRE_NODE)".to_owned()
            } else if error.is_timeout() {
                "no answer in time".to_owned()
            } else {
                // reqwest's own text and its cause's, once each.
                std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(": ")
            };
            unreachable(reason)
        })?;
        if response.status().is_success() {
            return response.json().map_err(|e| unreachable(format!("unexpected answer: {e}")));
        }
        let status = response.status();
        match response.json::<Problem>() {
            Ok(problem) => Err(ClientError::Refused(problem)),
            Err(_) => Err(unreachable(format!("answered {status} without a problem document"))),
        }
    }
}
