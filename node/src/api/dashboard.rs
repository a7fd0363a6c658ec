//! The farmer's dashboard at `/`: one page, rendered here from the same state the JSON API
//! reads (no script, no build step), so every number on it is the number the API gives.
//!
//! It shows this node's reward and proven bytes per closed epoch (a bar plot and the table
//! behind it), the chunks and bytes it must hold against its disk, the challenges this
//! node's audits put per epoch and to each member, by outcome, and the section's members
//! and open epoch.
//! Each figure carries a `data-` attribute with its exact value for scripts and tests.

use std::fmt::Write;
use std::sync::Arc;

use acre_api::farming::StatementLine;
use acre_api::storage::{ChallengeTally, FarmerView};
use acre_api::{routes, Problem};
use acre_ledger::{AccountId, Amount, NANOS_PER_CREDIT};
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::Router;

use crate::storage::{Storage, StorageError};
use acre_core::log::statement;

/// Epochs the reward plot and table cover.
const SHOWN_EPOCHS: u64 = 30;
/// The plot's size in SVG units.
const PLOT_WIDTH: f64 = 600.0;
const PLOT_HEIGHT: f64 = 120.0;

/// The dashboard's route.
pub fn routes(storage: Arc<Storage>) -> Router {
    Router::new().route(routes::DASHBOARD, get(page)).with_state(storage)
}

/// What the page shows, gathered before any HTML is written.
struct Dashboard {
    node: AccountId,
    elder: bool,
    open_epoch: Option<u64>,
    lines: Vec<StatementLine>,
    /// Per closed epoch, the challenges this node's audits put to all members, by outcome.
    audits: Vec<(u64, ChallengeTally)>,
    holding: FarmerView,
    members: Vec<MemberRow>,
}

struct MemberRow {
    node: AccountId,
    age: u64,
    elder: bool,
    audits: Option<FarmerView>,
}

async fn page(State(storage): State<Arc<Storage>>) -> Result<Html<String>, Problem> {
    let dashboard = gather(&storage)?;
    render(&dashboard).map(Html).map_err(|error| Problem::internal(format!("rendering the dashboard: {error}")))
}

fn gather(storage: &Storage) -> Result<Dashboard, Problem> {
    let node = storage.section().me();
    let view = storage.farming().view();
    let last = view.epochs.last().map_or(0, |outcome| outcome.record.epoch);
    let first = last.saturating_sub(SHOWN_EPOCHS - 1).max(1);
    let lines = statement(&view.epochs, &node, first, last);
    let audits = view
        .epochs
        .iter()
        .filter(|outcome| outcome.record.epoch >= first)
        .map(|outcome| {
            (outcome.record.epoch, outcome.observed.values().fold(ChallengeTally::default(), ChallengeTally::merged))
        })
        .collect();
    // A node the elders have not admitted yet is no member: it holds nothing so far.
    let holding = match storage.farmer(node) {
        Ok(view) => view,
        Err(StorageError::UnknownFarmer(_)) => FarmerView { node, ..FarmerView::default() },
        Err(error) => return Err(error.into()),
    };
    let (open_epoch, members) = match &view.state {
        Some(state) => {
            let elders = state.elders();
            let rows = state
                .members()
                .iter()
                .map(|(id, member)| MemberRow {
                    node: *id,
                    age: member.age,
                    elder: elders.contains(id),
                    // No elder audits itself: its own row has no tallies.
                    audits: (*id != node).then(|| storage.farmer(*id).ok()).flatten(),
                })
                .collect();
            (Some(state.epoch()), rows)
        }
        None => (None, Vec::new()),
    };
    Ok(Dashboard { node, elder: storage.section().is_elder(), open_epoch, lines, audits, holding, members })
}

fn credits(amount: Amount) -> f64 {
    amount.nanos() as f64 / NANOS_PER_CREDIT as f64
}

fn render(page: &Dashboard) -> Result<String, std::fmt::Error> {
    let mut html = String::with_capacity(16 << 10);
    let role = if page.elder {
        "elder"
    } else if page.members.iter().any(|member| member.node == page.node) {
        "member"
    } else {
        "not yet admitted by the elders"
    };
    let open = page.open_epoch.map_or("loading".to_owned(), |epoch| epoch.to_string());
    write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\">\
         <title>Acre farmer {node}</title><style>{STYLE}</style></head><body>\
         <h1>Acre farmer</h1><p>node <code id=\"node\">{node}</code>, {role}; open epoch \
         <span id=\"open-epoch\" data-epoch=\"{open}\">{open}</span></p>",
        node = page.node,
    )?;

    let total = page.lines.iter().try_fold(Amount::ZERO, |sum, line| sum.checked_add(line.reward));
    let total = total.map_or("more than the supply cap".to_owned(), |total| total.to_string());
    write!(
        html,
        "<h2>Rewards</h2><p><span id=\"reward-total\" data-credits=\"{total}\">{total}</span> credits over the \
         last {} closed epochs.</p>",
        page.lines.len()
    )?;
    plot(&mut html, &page.lines)?;
    html.push_str(
        "<table id=\"rewards\"><thead><tr><th>epoch</th><th>proven bytes</th><th>proven chunks</th>\
         <th>reward (credits)</th></tr></thead><tbody>",
    );
    for line in page.lines.iter().rev() {
        write!(
            html,
            "<tr data-epoch=\"{epoch}\" data-proven-bytes=\"{bytes}\" data-reward=\"{reward}\"><td>{epoch}</td>\
             <td>{bytes}</td><td>{chunks}</td><td>{reward}</td></tr>",
            epoch = line.epoch,
            bytes = line.proven_bytes,
            chunks = line.proven_chunks,
            reward = line.reward,
        )?;
    }
    html.push_str("</tbody></table>");

    let h = &page.holding;
    let (used, capacity) = (h.used.unwrap_or(0), h.capacity.unwrap_or(0));
    let percent = if capacity == 0 { 0.0 } else { 100.0 * used as f64 / capacity as f64 };
    write!(
        html,
        "<h2>Disk</h2><dl id=\"disk\" data-chunks=\"{chunks}\" data-bytes=\"{bytes}\" data-used=\"{used}\" \
         data-capacity=\"{capacity}\"><dt>must hold</dt><dd>{chunks} chunks, {bytes} bytes</dd>\
         <dt>disk</dt><dd>{used} of {capacity} bytes ({percent:.2}%)</dd></dl>\
         <svg class=\"gauge\" viewBox=\"0 0 {PLOT_WIDTH} 12\" role=\"img\" aria-label=\"disk use\">\
         <rect width=\"{PLOT_WIDTH}\" height=\"12\" class=\"empty\"/><rect width=\"{fill:.1}\" height=\"12\" \
         class=\"full\"/></svg>",
        chunks = h.chunks,
        bytes = h.bytes,
        fill = PLOT_WIDTH * percent / 100.0,
    )?;

    html.push_str(
        "<h2>Challenges this node put, by outcome, per epoch</h2><table id=\"audits\"><thead><tr><th>epoch</th>\
         <th>passed</th><th>wrong bytes</th><th>missing</th><th>late</th><th>timeouts</th><th>excused</th></tr></thead><tbody>",
    );
    for (epoch, c) in page.audits.iter().rev() {
        write!(
            html,
            "<tr data-audit-epoch=\"{epoch}\" data-passed=\"{p}\" data-failed=\"{f}\"><td>{epoch}</td><td>{p}</td>\
             <td>{w}</td><td>{m}</td><td>{l}</td><td>{t}</td><td>{e}</td></tr>",
            p = c.passed,
            f = c.failed(),
            w = c.wrong_bytes,
            m = c.missing,
            l = c.late,
            t = c.timeouts,
            e = c.excused
        )?;
    }
    html.push_str("</tbody></table>");

    html.push_str(
        "<h2>Members and this node's audits of them</h2><table id=\"members\"><thead><tr><th>node</th><th>age</th>\
         <th>role</th><th>passed</th><th>wrong bytes</th><th>missing</th><th>late</th><th>timeouts</th><th>excused</th></tr>\
         </thead><tbody>",
    );
    for member in &page.members {
        let role = if member.elder { "elder" } else { "member" };
        let id = member.node.to_string();
        let shown = if member.node == page.node { "this node".to_owned() } else { short(&id) };
        write!(
            html,
            "<tr data-node=\"{id}\" data-age=\"{age}\"><td><code title=\"{id}\">{shown}</code></td><td>{age}</td>\
             <td>{role}</td>",
            age = member.age
        )?;
        match &member.audits {
            Some(view) => {
                let c = &view.challenges;
                write!(
                    html,
                    "<td data-passed=\"{p}\">{p}</td><td>{w}</td><td>{m}</td><td>{l}</td><td>{t}</td><td>{e}</td>",
                    p = c.passed,
                    w = c.wrong_bytes,
                    m = c.missing,
                    l = c.late,
                    t = c.timeouts,
                    e = c.excused
                )?;
            }
            None => html.push_str("<td colspan=\"6\">no elder audits itself</td>"),
        }
        html.push_str("</tr>");
    }
    write!(
        html,
        "</tbody></table><p class=\"note\">Every figure here is also in the JSON API: <code>{}</code>, <code>{}</code> \
         and <code>{}</code>.</p></body></html>",
        routes::statement(page.node),
        routes::farmer(page.node),
        routes::MEMBERS
    )?;
    Ok(html)
}

/// A node id cut to its start and end, the whole of it in the cell's tooltip.
fn short(id: &str) -> String {
    match (id.get(..12), id.get(id.len().saturating_sub(6)..)) {
        (Some(start), Some(end)) if id.len() > 20 => format!("{start}…{end}"),
        _ => id.to_owned(),
    }
}

/// The reward per epoch as bars, the highest reaching the top of the plot.
fn plot(html: &mut String, lines: &[StatementLine]) -> std::fmt::Result {
    let highest = lines.iter().map(|line| credits(line.reward)).fold(0.0_f64, f64::max);
    write!(
        html,
        "<svg id=\"reward-plot\" viewBox=\"0 0 {PLOT_WIDTH} {PLOT_HEIGHT}\" role=\"img\" \
         aria-label=\"reward per epoch\"><rect width=\"{PLOT_WIDTH}\" height=\"{PLOT_HEIGHT}\" class=\"empty\"/>"
    )?;
    let slot = PLOT_WIDTH / SHOWN_EPOCHS as f64;
    for (index, line) in lines.iter().enumerate() {
        let height = if highest > 0.0 { PLOT_HEIGHT * credits(line.reward) / highest } else { 0.0 };
        write!(
            html,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{height:.1}\">\
             <title>epoch {epoch}: {reward} credits</title></rect>",
            x = index as f64 * slot,
            y = PLOT_HEIGHT - height,
            w = slot * 0.8,
            epoch = line.epoch,
            reward = line.reward,
        )?;
    }
    html.push_str("</svg>");
    write!(
        html,
        "<p class=\"note\">The tallest bar is {highest:.3} credits; one bar per closed epoch, oldest first.</p>"
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}\
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}td,th{border-bottom:1px solid #ddd;padding:.25rem .5rem;\
text-align:right}td:first-child,th:first-child{text-align:left}svg{width:100%;height:auto;display:block}\
.empty{fill:#f3f3f3}.bar,.full{fill:#3a7d44}code{font-size:.8em}.note{color:#666;font-size:.9em}";
