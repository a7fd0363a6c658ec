//! The API's paths: the templates the node's router mounts (`{name}` marks a segment) and
//! the functions that fill them in for a client, side by side so the two cannot drift.

use std::fmt::Display;

/// The farmer's dashboard, an HTML page.
pub const DASHBOARD: &str = "/";
/// Prometheus figures.
pub const METRICS: &str = "/metrics";
/// This API's OpenAPI document.
pub const OPENAPI: &str = "/v1/openapi.json";
/// The node's health.
pub const HEALTH: &str = "/v1/health";
/// One account.
pub const ACCOUNT: &str = "/v1/accounts/{address}";
/// An account's history, by cursor.
pub const HISTORY: &str = "/v1/accounts/{address}/history";
/// An account's hidden balance: its commitments and sealed openings.
pub const HIDDEN: &str = "/v1/accounts/{address}/hidden";
/// The elders whose votes certify transfers.
pub const SECTION: &str = "/v1/section";
/// The section's members by the agreed log.
pub const MEMBERS: &str = "/v1/section/members";
/// Orders to certify.
pub const ORDERS: &str = "/v1/orders";
/// Certificates to apply.
pub const CERTIFICATES: &str = "/v1/certificates";
/// One certified transfer.
pub const TRANSFER: &str = "/v1/transfers/{id}";
/// Supply figures with the invariant checked.
pub const SUPPLY: &str = "/v1/supply";
/// Every balance and commitment, to run the supply audit.
pub const SUPPLY_AUDIT: &str = "/v1/supply/audit";
/// The store price.
pub const QUOTE: &str = "/v1/quote";
/// Store payments, accepted once for every chunk they list.
pub const PAYMENTS: &str = "/v1/payments";
/// One chunk's bytes: uploaded raw with `PUT`, read with `GET`.
pub const CHUNK: &str = "/v1/chunks/{address}";
/// Who holds a chunk.
pub const HOLDERS: &str = "/v1/chunks/{address}/holders";
/// A farmer as this node's audits see it.
pub const FARMER: &str = "/v1/farmers/{node}";
/// A farmer's statement of proofs and rewards.
pub const STATEMENT: &str = "/v1/farmers/{node}/statement";
/// One closed epoch (or `latest`).
pub const EPOCH: &str = "/v1/epochs/{epoch}";
/// App commands.
pub const APPS: &str = "/v1/apps";
/// One app.
pub const APP: &str = "/v1/apps/{id}";
/// An app's payouts, by cursor.
pub const PAYOUTS: &str = "/v1/apps/{id}/payouts";

fn fill(template: &str, value: impl Display) -> String {
    let (before, rest) = template.split_once('{').unwrap_or((template, ""));
    let after = rest.split_once('}').map_or("", |(_, after)| after);
    format!("{before}{value}{after}")
}

/// [`ACCOUNT`] of `address`.
pub fn account(address: impl Display) -> String {
    fill(ACCOUNT, address)
}

/// [`HISTORY`] of `address`.
pub fn history(address: impl Display) -> String {
    fill(HISTORY, address)
}

/// [`HIDDEN`] of `address`.
pub fn hidden(address: impl Display) -> String {
    fill(HIDDEN, address)
}

/// [`TRANSFER`] of `id`.
pub fn transfer(id: impl Display) -> String {
    fill(TRANSFER, id)
}

/// [`CHUNK`] at `address`.
pub fn chunk(address: impl Display) -> String {
    fill(CHUNK, address)
}

/// [`HOLDERS`] of the chunk at `address`.
pub fn holders(address: impl Display) -> String {
    fill(HOLDERS, address)
}

/// [`FARMER`] of `node`.
pub fn farmer(node: impl Display) -> String {
    fill(FARMER, node)
}

/// [`STATEMENT`] of `node`.
pub fn statement(node: impl Display) -> String {
    fill(STATEMENT, node)
}

/// [`EPOCH`] number `epoch` (or `latest`).
pub fn epoch(epoch: impl Display) -> String {
    fill(EPOCH, epoch)
}

/// [`APP`] of `id`.
pub fn app(id: impl Display) -> String {
    fill(APP, id)
}

/// [`PAYOUTS`] of `id`.
pub fn payouts(id: impl Display) -> String {
    fill(PAYOUTS, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_in_their_one_segment() {
        assert_eq!(statement("n1"), "/v1/farmers/n1/statement");
        assert_eq!(epoch("latest"), "/v1/epochs/latest");
        assert_eq!(payouts(7), "/v1/apps/7/payouts");
    }
}
