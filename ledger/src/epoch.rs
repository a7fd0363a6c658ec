//! Closing an epoch: from the elders' audit reports to the record that mints farmers'
//! rewards. Pure and deterministic: every elder that applies the same reports computes the
//! same record, to the nano.
//!
//! - Farmers are paid for what they hold, not for what happened to be sampled: each
//!   farmer's duty (the bytes and chunks the agreed registry places on it) comes from the
//!   section state, never from an elder's report; an elder's report is a verdict per
//!   holder — of the chunks it challenged the holder on this epoch, how many were proven.
//!   A farmer's proven bytes are its duty scaled by the lower median of the verdicts of
//!   the reporting elders other than itself, so any f < n/3 liars can neither raise a
//!   farmer above what the honest elders saw nor, for a farmer that is not an elder, push
//!   it below.
//! - The record pays out the epoch's emission ([`emission`]: a fixed share of what remains
//!   under the supply cap) plus the store payments collected into the section's pool,
//!   split by proven bytes; every item names its farmer, reward address, bytes and
//!   amount, and the items sum to the total exactly.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::apps::agreed_usage;
use crate::{AccountId, Amount, AppId, Digest};

/// Each epoch mints this fraction of what remains under the cap: 1 / 2^20. With hourly
/// epochs, half of the remainder is minted in about 83 years.
pub const EMISSION_SHIFT: u32 = 20;
/// Hash context of an epoch record's id.
const RECORD_CONTEXT: &str = "acre 2026 epoch record v1";

/// The new credits epoch rewards may mint when `supply` credits exist: the remainder under
/// the cap, shifted right by [`EMISSION_SHIFT`]. Never takes supply past the cap.
pub fn emission(supply: Amount) -> Amount {
    let remaining = Amount::MAX.nanos().saturating_sub(supply.nanos());
    Amount::from_nanos(remaining >> EMISSION_SHIFT).unwrap_or(Amount::ZERO)
}

/// One elder's report on an epoch: its verdict on each holder it audited, and the app
/// use it metered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochReport {
    /// The reporting elder.
    pub elder: AccountId,
    /// The epoch reported on.
    pub epoch: u64,
    /// Per holder: how many of the chunks this elder challenged it on it proved.
    pub verdicts: Vec<Verdict>,
    /// Uses of each app this elder has metered in all, counted from when it started: a
    /// running total, so elders that report at different moments still agree on it later.
    #[serde(default)]
    pub usage: BTreeMap<AppId, u64>,
    /// Its share of the section's randomness, from which newcomers' placement names are
    /// drawn.
    #[serde(default)]
    pub beacon: BeaconShare,
}

/// Hash context of an elder's beacon secret for one epoch.
const BEACON_SECRET_CONTEXT: &str = "acre 2026 beacon secret v1";
/// Hash context of the commitment to a beacon secret.
const BEACON_COMMIT_CONTEXT: &str = "acre 2026 beacon commitment v1";

/// An elder's share of the section's randomness in one report: commit, then reveal.
/// Each elder commits in its report on one epoch to a secret it reveals in its report on
/// the next; the reveals that match their commitments are hashed together at the close.
/// Nobody knows an epoch's beacon before the last reveal of it is ordered, and an elder
/// that reveals last can only withhold its own share (a choice of two), not pick among
/// many: its secret was fixed an epoch earlier. (Hashing the reports themselves would let
/// the elder whose report closes the epoch try variants of it offline.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeaconShare {
    /// The secret committed to in its report on the epoch before.
    pub reveal: Option<[u8; 32]>,
    /// The commitment ([`BeaconShare::commitment`]) to the secret it will reveal next.
    pub commit: Option<Digest>,
}

impl BeaconShare {
    /// The share of the elder with `key` in its report on `epoch` of `network`: its secrets
    /// follow from its key, so nothing has to be kept across restarts and nobody without
    /// the key can know them.
    pub fn of(key: &ed25519_dalek::SigningKey, network: &Digest, epoch: u64) -> Self {
        let secret = |epoch: u64| {
            *Digest::derive(BEACON_SECRET_CONTEXT, &[&key.to_bytes(), network.as_bytes(), &epoch.to_le_bytes()])
                .as_bytes()
        };
        BeaconShare { reveal: Some(secret(epoch)), commit: Some(BeaconShare::commitment(&secret(epoch + 1))) }
    }

    /// The commitment to `secret`.
    pub fn commitment(secret: &[u8; 32]) -> Digest {
        Digest::derive(BEACON_COMMIT_CONTEXT, &[secret])
    }
}

/// An elder's verdict on one holder for one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Verdict {
    /// The holder.
    pub holder: AccountId,
    /// Chunk challenges sent to it this epoch (drawn from its duty).
    pub sampled: u32,
    /// Of those, the ones it proved in time.
    pub passed: u32,
}

/// What one member must hold by the agreed registry, and where its rewards go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Farmer {
    /// Where its rewards go.
    pub reward: AccountId,
    /// Bytes of the chunks placed on it.
    pub bytes: u64,
    /// How many chunks are placed on it.
    pub chunks: u64,
}

/// One farmer's line in an epoch record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintItem {
    /// The farmer (its node id).
    pub farmer: AccountId,
    /// Where its rewards go.
    pub reward_address: AccountId,
    /// Its duty's bytes scaled by what the elders' verdicts show it held this epoch.
    pub proven_bytes: u64,
    /// Its duty's chunks, scaled the same way.
    pub proven_chunks: u64,
    /// Its share of the epoch's payout.
    pub amount: Amount,
}

/// What an epoch paid, itemised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch.
    pub epoch: u64,
    /// New credits minted: the epoch's emission (zero when nobody proved anything).
    pub minted: Amount,
    /// Credits paid out of the section's pool (store payments collected).
    pub from_pool: Amount,
    /// `minted + from_pool`, and the sum of the items' amounts.
    pub total: Amount,
    /// One line per farmer that proved storage, by farmer id.
    pub items: Vec<MintItem>,
    /// One line per app that collected fees or was used, by app id.
    #[serde(default)]
    pub apps: Vec<AppItem>,
}

/// One app's line in an epoch record: what it earned and why, so its developer can
/// reconcile every credit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppItem {
    /// The app.
    pub app: AppId,
    /// Where its earnings go.
    pub payout: AccountId,
    /// Fees its users paid with their store payments since the last payout.
    pub fees: Amount,
    /// Uses a quorum of elders agreed on, beyond what earlier epochs paid for.
    pub usage: u64,
    /// Uses agreed in all, this epoch's included.
    pub usage_total: u64,
    /// Its part of the apps' share of the emission, by use.
    pub usage_share: Amount,
    /// `fees + usage_share`.
    pub amount: Amount,
}

/// The part of each epoch's emission that goes to apps, by their agreed use, in percent
/// (as SAFE's RFC 0004 proposed); with no agreed use it stays with the farmers.
pub const APP_SHARE_PERCENT: u64 = 10;

/// What the apps bring to an epoch's close.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppLedger {
    /// Per app, what its line is made from.
    pub apps: BTreeMap<AppId, AppBalance>,
}

/// One app at an epoch's close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppBalance {
    /// Where its earnings go.
    pub payout: AccountId,
    /// Fees its users paid since the last payout.
    pub unpaid_fees: Amount,
    /// What store payments through it paid the farmers beyond its fees, less what its
    /// use has earned it: the most its use can still earn (see [`app_items`]).
    pub use_allowance: Amount,
    /// Uses already paid for (agreed running total).
    pub usage_paid: u64,
}

impl EpochRecord {
    /// The record's id, which elders sign and the ledger applies once.
    pub fn id(&self) -> Digest {
        let mut bytes = Vec::with_capacity(48 + self.items.len() * 96);
        for value in [self.epoch, self.minted.nanos(), self.from_pool.nanos(), self.total.nanos()] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        for item in &self.items {
            bytes.extend_from_slice(item.farmer.as_bytes());
            bytes.extend_from_slice(item.reward_address.as_bytes());
            for value in [item.proven_bytes, item.proven_chunks, item.amount.nanos()] {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
        }
        for item in &self.apps {
            bytes.extend_from_slice(&item.app.0);
            bytes.extend_from_slice(item.payout.as_bytes());
            for value in
                [item.fees.nanos(), item.usage, item.usage_total, item.usage_share.nanos(), item.amount.nanos()]
            {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
        }
        Digest::derive(RECORD_CONTEXT, &[&bytes])
    }
}

/// Why an epoch cannot be closed from these reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    /// Fewer distinct elders reported than a quorum.
    #[error("{reports} elders reported on epoch {epoch}; a quorum is {quorum}")]
    TooFewReports {
        /// The epoch.
        epoch: u64,
        /// Distinct reporting elders.
        reports: usize,
        /// The quorum.
        quorum: usize,
    },
}

/// The record of `epoch` from the reports of the section's `elders` (reports from others,
/// or about other epochs, are ignored; an elder's later report replaces its earlier one).
/// `farmers` are the members with their duties and reward addresses, `supply` the credits
/// in existence (for the emission), `pool` what the section's pool holds.
pub fn close_epoch(
    epoch: u64,
    elders: &BTreeSet<AccountId>,
    reports: &[EpochReport],
    farmers: &BTreeMap<AccountId, Farmer>,
    (supply, pool): (Amount, Amount),
    apps: &AppLedger,
) -> Result<EpochRecord, EpochError> {
    let quorum = crate::quorum(elders.len());
    let mut latest: BTreeMap<AccountId, &EpochReport> = BTreeMap::new();
    for report in reports.iter().filter(|r| r.epoch == epoch && elders.contains(&r.elder)) {
        latest.insert(report.elder, report);
    }
    if latest.len() < quorum {
        return Err(EpochError::TooFewReports { epoch, reports: latest.len(), quorum });
    }
    let mut proven: BTreeMap<AccountId, (u64, u64)> = BTreeMap::new();
    for (holder, farmer) in farmers.iter().filter(|(_, farmer)| farmer.bytes > 0) {
        let (held, of) = held_fraction(holder, &latest);
        let bytes = scale(farmer.bytes, held, of);
        if bytes > 0 {
            proven.insert(*holder, (bytes, scale(farmer.chunks, held, of)));
        }
    }
    let total_bytes: u128 = proven.values().map(|(bytes, _)| u128::from(*bytes)).sum();
    if total_bytes == 0 {
        // Nothing proven: nothing minted, and the pool waits for an epoch that has work.
        return Ok(EpochRecord {
            epoch,
            minted: Amount::ZERO,
            from_pool: Amount::ZERO,
            total: Amount::ZERO,
            items: vec![],
            apps: vec![],
        });
    }
    let minted = emission(supply);
    let total = minted.checked_add(pool).unwrap_or(Amount::MAX);
    let app_items = app_items(minted, pool, &latest.values().map(|r| &r.usage).collect::<Vec<_>>(), quorum, apps);
    let to_apps: u64 = app_items.iter().map(|item| item.amount.nanos()).sum();
    let to_farmers = total.nanos().saturating_sub(to_apps);
    let shares = split(to_farmers, proven.iter().map(|(farmer, (bytes, _))| (*farmer, *bytes)).collect());
    let items = proven
        .iter()
        .zip(shares)
        .map(|((farmer, (bytes, chunks)), nanos)| MintItem {
            farmer: *farmer,
            reward_address: farmers.get(farmer).map_or(*farmer, |f| f.reward),
            proven_bytes: *bytes,
            proven_chunks: *chunks,
            amount: Amount::from_nanos(nanos).unwrap_or(Amount::ZERO),
        })
        .collect();
    let from_pool = Amount::from_nanos(total.nanos() - minted.nanos()).unwrap_or(Amount::ZERO);
    Ok(EpochRecord { epoch, minted, from_pool, total, items, apps: app_items })
}

/// What the reporting elders other than `holder` say of the share of its duty it held,
/// as (proven, challenged): the lower median of their verdicts. An elder that reported no
/// verdict on it counts as having seen nothing proven. Liars in a minority can never
/// raise a holder above the honest verdicts; with q >= 2f + 1 values, f liars cannot sink
/// a holder that is not an elder either. A holder's own report is left out — counting it
/// as proven would give a freeloading elder a vote for itself — so an elder, with one
/// value fewer, could be lowered by f liars were the epoch to close on a bare quorum (so
/// the section state waits for every report, or for a grace); never raised. (Reading the (f+1)-th highest instead would leave slack for absent verdicts,
/// but lets one liar pay a freeloading elder in a section of 3 elders, where f is 0: the
/// simulator found it.)
fn held_fraction(holder: &AccountId, reports: &BTreeMap<AccountId, &EpochReport>) -> (u64, u64) {
    let mut verdicts: Vec<(u64, u64)> = reports
        .iter()
        .filter(|(elder, _)| *elder != holder)
        .map(|(_, report)| {
            report
                .verdicts
                .iter()
                .find(|verdict| verdict.holder == *holder && verdict.sampled > 0)
                .map_or((0, 1), |v| (u64::from(v.passed.min(v.sampled)), u64::from(v.sampled)))
        })
        .collect();
    // Ordered by the fraction itself: a/b < c/d exactly when a·d < c·b.
    verdicts.sort_by(|(a, b), (c, d)| (u128::from(*a) * u128::from(*d)).cmp(&(u128::from(*c) * u128::from(*b))));
    verdicts.get(verdicts.len().saturating_sub(1) / 2).copied().unwrap_or((0, 1))
}

/// `value · part / whole`, rounded down, for `part <= whole`.
fn scale(value: u64, part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    u64::try_from(u128::from(value) * u128::from(part.min(whole)) / u128::from(whole)).unwrap_or(value)
}

/// The apps' lines: each app's unpaid fees (out of the pool, capped by it) plus its part of
/// [`APP_SHARE_PERCENT`] of the emission, split by the uses a quorum of reports agree on
/// beyond those already paid for, and never more than the app's allowance: what store
/// payments through it paid the farmers, less what its use earned before
/// ([`AppBalance::use_allowance`]); what the cap holds back stays with the farmers. Reads
/// cost their reader nothing, so use alone could be looped for free; with the cap,
/// raising an app's payout by X takes paying X to the farmers through it: nobody can
/// raise an app's payout by more than they pay in.
fn app_items(
    minted: Amount,
    pool: Amount,
    usage_reports: &[&BTreeMap<AppId, u64>],
    quorum: usize,
    apps: &AppLedger,
) -> Vec<AppItem> {
    let agreed = agreed_usage(usage_reports, quorum);
    let fresh: BTreeMap<AppId, (u64, u64)> = apps
        .apps
        .iter()
        .filter_map(|(app, balance)| {
            let counted = balance.usage_paid;
            let total = agreed.get(app).copied().unwrap_or(0).max(counted);
            (total > counted).then_some((*app, (total - counted, total)))
        })
        .collect();
    let share = if fresh.is_empty() { 0 } else { minted.nanos() / 100 * APP_SHARE_PERCENT };
    let shares = fill_to_allowances(share, &fresh, apps);
    let mut fees_left = pool.nanos();
    apps.apps
        .iter()
        .filter_map(|(app, balance)| {
            let fees = balance.unpaid_fees.nanos().min(fees_left);
            fees_left -= fees;
            let usage_share = shares.get(app).copied().unwrap_or(0);
            let (usage, usage_total) = fresh.get(app).copied().unwrap_or((0, balance.usage_paid));
            // Fresh use earns now or never: an app whose use earned nothing (it had no
            // allowance) still gets its line, so its counted use moves on and reads looped
            // while nothing was paid through it are not a backlog that a later payment
            // through it would cash in at once.
            (fees > 0 || usage_share > 0 || usage > 0).then(|| AppItem {
                app: *app,
                payout: balance.payout,
                fees: Amount::from_nanos(fees).unwrap_or(Amount::ZERO),
                usage,
                usage_total,
                usage_share: Amount::from_nanos(usage_share).unwrap_or(Amount::ZERO),
                amount: Amount::from_nanos(fees + usage_share).unwrap_or(Amount::ZERO),
            })
        })
        .collect()
}

/// The apps' share of use, `share` nanos, split by fresh uses among the apps that have
/// allowance left, none getting more than its allowance: an app that reaches its
/// allowance gets exactly that, and the rest is split again among the others, until none
/// is capped or none is left. An app without allowance takes no weight, so uses looped
/// through it dilute nobody; what no app can take stays with the farmers.
fn fill_to_allowances(share: u64, fresh: &BTreeMap<AppId, (u64, u64)>, apps: &AppLedger) -> BTreeMap<AppId, u64> {
    let room = |app: &AppId| apps.apps.get(app).map_or(0, |balance| balance.use_allowance.nanos());
    let mut open: Vec<(AppId, u64)> =
        fresh.iter().filter(|(app, _)| room(app) > 0).map(|(app, (uses, _))| (*app, *uses)).collect();
    let mut granted: BTreeMap<AppId, u64> = BTreeMap::new();
    let mut left = share;
    while !open.is_empty() && left > 0 {
        let parts = split(left, open.iter().map(|(app, uses)| (AccountId(app.0), *uses)).collect());
        let capped: Vec<usize> = open
            .iter()
            .zip(&parts)
            .enumerate()
            .filter(|(_, ((app, _), part))| **part >= room(app))
            .map(|(i, _)| i)
            .collect();
        if capped.is_empty() {
            for ((app, _), part) in open.iter().zip(parts) {
                granted.insert(*app, part);
            }
            break;
        }
        for index in capped.into_iter().rev() {
            let (app, _) = open.remove(index);
            granted.insert(app, room(&app));
            left -= room(&app);
        }
    }
    granted
}

/// Splits `total` nanos in proportion to the weights, exactly: each gets the floor of its
/// share, and the nanos left over go one each to the largest remainders (ties to the
/// smaller id). Results are in the input's order.
fn split(total: u64, weights: Vec<(AccountId, u64)>) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|(_, w)| u128::from(*w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut shares: Vec<u64> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(u128, AccountId, usize)> = Vec::with_capacity(weights.len());
    for (index, (id, weight)) in weights.iter().enumerate() {
        let exact = u128::from(total) * u128::from(*weight);
        shares.push(u64::try_from(exact / sum).unwrap_or(u64::MAX));
        remainders.push((exact % sum, *id, index));
    }
    let left = total - shares.iter().sum::<u64>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, index) in remainders.into_iter().take(left as usize) {
        shares[index] += 1;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u8) -> AccountId {
        AccountId([n; 32])
    }

    /// Elder `elder`'s report: per holder, (proven, challenged).
    fn report(elder: u8, verdicts: &[(u8, u32, u32)]) -> EpochReport {
        let verdicts =
            verdicts.iter().map(|&(holder, passed, sampled)| Verdict { holder: id(holder), sampled, passed }).collect();
        EpochReport { elder: id(elder), epoch: 1, verdicts, usage: BTreeMap::new(), beacon: Default::default() }
    }

    fn elders(count: u8) -> BTreeSet<AccountId> {
        (1..=count).map(id).collect()
    }

    /// Farmers with these duties (bytes), paid at their own ids.
    fn farmers(duties: &[(u8, u64)]) -> BTreeMap<AccountId, Farmer> {
        duties
            .iter()
            .map(|&(n, bytes)| (id(n), Farmer { reward: id(n), bytes, chunks: bytes.div_ceil(1 << 20) }))
            .collect()
    }

    fn funds(supply: u64, pool: u64) -> (Amount, Amount) {
        (Amount::from_nanos(supply).expect("amount"), Amount::from_nanos(pool).expect("amount"))
    }

    #[test]
    fn a_farmer_is_paid_for_its_whole_duty_scaled_by_what_the_elders_saw() {
        // 4 elders, quorum 3. Farmer 10 proved all it was asked; farmer 11 half.
        let reports = [
            report(1, &[(10, 16, 16), (11, 8, 16)]),
            report(2, &[(10, 16, 16), (11, 8, 16)]),
            report(3, &[(10, 16, 16), (11, 8, 16)]),
        ];
        let mut members = farmers(&[(10, 1_000), (11, 3_000), (12, 0)]);
        members.get_mut(&id(11)).expect("farmer").reward = id(99);
        let supply = Amount::from_credits(1_000).expect("amount");
        let pool = Amount::from_nanos(4_000).expect("amount");
        let record =
            close_epoch(1, &elders(4), &reports, &members, (supply, pool), &AppLedger::default()).expect("record");
        assert_eq!(record.items.len(), 2, "a member with nothing to hold earns nothing");
        assert_eq!((record.items[0].farmer, record.items[0].proven_bytes), (id(10), 1_000));
        assert_eq!((record.items[1].reward_address, record.items[1].proven_bytes), (id(99), 1_500));
        assert_eq!(record.minted, emission(supply));
        assert_eq!(record.from_pool, pool);
        let sum: u64 = record.items.iter().map(|i| i.amount.nanos()).sum();
        assert_eq!(sum, record.total.nanos(), "the items add up");
        let share = record.items[1].amount.nanos();
        assert!(share.abs_diff(record.total.nanos() * 3 / 5) <= 1, "split by proven bytes, to the nano");
    }

    /// With 7 elders (f = 2), two liars reporting a farmer as perfect, or as holding
    /// nothing, move its pay neither way; for an elder, liars can only lower it.
    #[test]
    fn liars_can_neither_raise_nor_sink_what_a_farmer_is_paid_for() {
        let members = farmers(&[(10, 1 << 30), (1, 1 << 30)]);
        let honest = |elder| report(elder, &[(10, 40, 80), (1, 40, 80)]);
        let proven = |reports: &[EpochReport], farmer: u8| {
            let record = close_epoch(1, &elders(7), reports, &members, funds(1 << 50, 0), &AppLedger::default())
                .expect("record");
            record.items.iter().find(|item| item.farmer == id(farmer)).map_or(0, |item| item.proven_bytes)
        };
        let mut inflated: Vec<EpochReport> = (3..=7).map(honest).collect();
        inflated.push(report(1, &[(10, 80, 80)]));
        inflated.push(report(2, &[(10, 80, 80), (1, 80, 80)]));
        assert_eq!(proven(&inflated, 10), 1 << 29, "two liars cannot raise a farmer");
        assert_eq!(proven(&inflated, 1), 1 << 29, "nor an elder");
        let mut sunk: Vec<EpochReport> = (3..=7).map(honest).collect();
        sunk.push(report(1, &[(10, 0, 80)]));
        sunk.push(report(2, &[(10, 0, 80), (1, 0, 80)]));
        assert_eq!(proven(&sunk, 10), 1 << 29, "nor sink one that is not an elder");
    }

    /// Why an epoch waits for every report (or for the grace) rather than closing on the
    /// first quorum: an elder is not judged on its own report, so on a bare quorum two
    /// liars of seven sink an honest elder's pay to nothing; with every report in they
    /// cannot.
    #[test]
    fn with_every_report_in_liars_cannot_sink_an_elder_as_on_a_bare_quorum() {
        let members = farmers(&[(7, 1 << 30)]);
        let proven = |reports: &[EpochReport]| {
            let record = close_epoch(1, &elders(7), reports, &members, funds(1 << 50, 0), &AppLedger::default())
                .expect("record");
            record.items.iter().find(|item| item.farmer == id(7)).map_or(0, |item| item.proven_bytes)
        };
        let liar = |elder| report(elder, &[(7, 0, 80)]);
        let honest = |elder| report(elder, &[(7, 40, 80)]);
        let own = report(7, &[]);
        let bare = [liar(1), liar(2), honest(3), honest(4), own.clone()];
        assert_eq!(proven(&bare), 0, "on a bare quorum two of the elder's four verdicts are lies");
        let mut every: Vec<EpochReport> = vec![liar(1), liar(2)];
        every.extend((3..=6).map(honest));
        every.push(own);
        assert_eq!(proven(&every), 1 << 29, "every report in: the liars are outvoted");
    }

    #[test]
    fn a_byzantine_elder_cannot_mint_for_a_holder_that_stores_nothing() {
        // Farmer 66 has a duty but proves nothing to the honest elders; 67 has no duty.
        let members = farmers(&[(10, 1_000), (66, 1 << 20)]);
        let mut reports = vec![
            report(1, &[(10, 16, 16), (66, 0, 16)]),
            report(2, &[(10, 16, 16), (66, 0, 16)]),
            report(3, &[(10, 16, 16)]),
        ];
        reports.push(report(4, &[(66, 16, 16), (67, 16, 16)]));
        let record =
            close_epoch(1, &elders(4), &reports, &members, funds(0, 0), &AppLedger::default()).expect("record");
        assert!(record.items.iter().all(|item| item.farmer != id(66) && item.farmer != id(67)));
        // Nor by repeating itself, or through a non-elder's reports.
        reports.push(report(4, &[(66, 16, 16)]));
        reports.push(report(50, &[(66, 16, 16)]));
        reports.push(report(51, &[(66, 16, 16)]));
        let record =
            close_epoch(1, &elders(4), &reports, &members, funds(0, 0), &AppLedger::default()).expect("record");
        assert!(record.items.iter().all(|item| item.farmer != id(66)));
        // A verdict claiming more proofs than challenges counts as all of them, no more.
        let boasts = [report(1, &[(10, 99, 16)]), report(2, &[(10, 99, 16)]), report(3, &[(10, 99, 16)])];
        let record = close_epoch(1, &elders(4), &boasts, &members, funds(0, 0), &AppLedger::default()).expect("record");
        assert_eq!(record.items[0].proven_bytes, 1_000);
    }

    #[test]
    fn apps_are_paid_their_fees_and_use_only_a_quorum_agrees_on() {
        let app = AppId([5; 32]);
        let balance = AppBalance {
            payout: id(77),
            unpaid_fees: Amount::from_nanos(300).expect("fee"),
            use_allowance: Amount::MAX,
            usage_paid: 0,
        };
        let apps = AppLedger { apps: BTreeMap::from([(app, balance)]) };
        let with_usage =
            |elder: u8, uses: u64| EpochReport { usage: BTreeMap::from([(app, uses)]), ..report(elder, &[(10, 1, 1)]) };
        let members = farmers(&[(10, 1 << 20)]);
        let supply = Amount::from_credits(1_000).expect("supply");
        let pool = Amount::from_nanos(1_000).expect("pool");
        // One elder claims use nobody else saw: the app gets its fee, no share of use.
        let reports = [with_usage(1, 1_000_000), with_usage(2, 0), with_usage(3, 0)];
        let record = close_epoch(1, &elders(4), &reports, &members, (supply, pool), &apps).expect("record");
        assert_eq!(record.apps.len(), 1);
        assert_eq!((record.apps[0].fees.nanos(), record.apps[0].usage_share), (300, Amount::ZERO));
        // A quorum agrees on 40 uses: 10% of the emission goes to the app.
        let reports = [with_usage(1, 40), with_usage(2, 40), with_usage(3, 55)];
        let record = close_epoch(1, &elders(4), &reports, &members, (supply, pool), &apps).expect("record");
        let item = &record.apps[0];
        assert_eq!((item.usage, item.usage_total), (40, 40));
        assert_eq!(item.usage_share.nanos(), emission(supply).nanos() / 100 * APP_SHARE_PERCENT);
        assert_eq!(item.amount.nanos(), item.fees.nanos() + item.usage_share.nanos());
        let paid: u64 = record.items.iter().map(|i| i.amount.nanos()).sum::<u64>() + item.amount.nanos();
        assert_eq!(paid, record.total.nanos(), "farmers and apps together get exactly the total");
    }

    /// An app whose use is looped for free earns from it no more than its allowance,
    /// what was paid to the farmers through it; the rest of its share stays with the
    /// farmers.
    #[test]
    fn an_apps_use_earns_no_more_than_was_paid_through_it() {
        let (looped, paying) = (AppId([5; 32]), AppId([6; 32]));
        let balance = |use_allowance: u64| AppBalance {
            payout: id(77),
            unpaid_fees: Amount::ZERO,
            use_allowance: Amount::from_nanos(use_allowance).expect("amount"),
            usage_paid: 0,
        };
        let apps = AppLedger { apps: BTreeMap::from([(looped, balance(0)), (paying, balance(1_000))]) };
        // A million reads of the looped app, attested by every elder; ten of the other.
        let usage = BTreeMap::from([(looped, 1_000_000), (paying, 10)]);
        let reports: Vec<EpochReport> =
            (1..=3).map(|elder| EpochReport { usage: usage.clone(), ..report(elder, &[(10, 1, 1)]) }).collect();
        let members = farmers(&[(10, 1 << 20)]);
        let supply = Amount::from_credits(1_000).expect("supply");
        let record = close_epoch(1, &elders(4), &reports, &members, (supply, Amount::ZERO), &apps).expect("record");
        let forfeited = record.apps.iter().find(|item| item.app == looped).expect("the looped app's line");
        assert_eq!(forfeited.amount, Amount::ZERO, "nothing paid through it, nothing earned");
        assert_eq!(forfeited.usage_total, 1_000_000, "its use counted as used up, not kept for later");
        let item = record.apps.iter().find(|item| item.app == paying).expect("the paying app's line");
        assert_eq!(item.usage_share.nanos(), 1_000, "capped at what was paid through it");
        let farmers_got: u64 = record.items.iter().map(|i| i.amount.nanos()).sum();
        assert_eq!(farmers_got + 1_000, record.total.nanos(), "what the cap holds back stays with the farmers");
        // Paying through it later earns nothing for the reads made while nothing was: the
        // use counted in that epoch is not a backlog.
        let later = AppLedger {
            apps: BTreeMap::from([(
                looped,
                AppBalance { usage_paid: forfeited.usage_total, ..balance(Amount::MAX.nanos()) },
            )]),
        };
        let paid_later = close_epoch(
            2,
            &elders(4),
            &reports.iter().map(|r| EpochReport { epoch: 2, ..r.clone() }).collect::<Vec<_>>(),
            &members,
            (supply, Amount::ZERO),
            &later,
        )
        .expect("record");
        assert!(paid_later.apps.iter().all(|item| item.app != looped), "no fresh use, no line: {:?}", paid_later.apps);

        // Looped reads dilute nobody: with room to spare, the paying app takes the whole
        // share, a million looped reads beside it or not; and a capped app's excess goes to
        // the apps with room before it goes to the farmers.
        let share = emission(supply).nanos() / 100 * APP_SHARE_PERCENT;
        let roomy = AppId([7; 32]);
        let wide = AppLedger { apps: BTreeMap::from([(looped, balance(0)), (paying, balance(Amount::MAX.nanos()))]) };
        let record = close_epoch(1, &elders(4), &reports, &members, (supply, Amount::ZERO), &wide).expect("record");
        let item = record.apps.iter().find(|item| item.app == paying).expect("the paying app's line");
        assert_eq!(item.usage_share.nanos(), share, "the whole share, undiluted by the looped reads");
        let three = AppLedger {
            apps: BTreeMap::from([
                (looped, balance(0)),
                (paying, balance(1_000)),
                (roomy, balance(Amount::MAX.nanos())),
            ]),
        };
        let usage = BTreeMap::from([(looped, 1_000_000), (paying, 10), (roomy, 10)]);
        let reports: Vec<EpochReport> =
            (1..=3).map(|elder| EpochReport { usage: usage.clone(), ..report(elder, &[(10, 1, 1)]) }).collect();
        let record = close_epoch(1, &elders(4), &reports, &members, (supply, Amount::ZERO), &three).expect("record");
        let got =
            |app: AppId| record.apps.iter().find(|item| item.app == app).map_or(0, |item| item.usage_share.nanos());
        assert_eq!((got(paying), got(roomy), got(looped)), (1_000, share - 1_000, 0));
    }

    #[test]
    fn too_few_reports_close_nothing_and_an_idle_epoch_mints_nothing() {
        let members = farmers(&[(10, 1_000)]);
        let reports = [report(1, &[(10, 1, 1)]), report(2, &[(10, 1, 1)])];
        let closed = close_epoch(1, &elders(4), &reports, &members, funds(0, 0), &AppLedger::default());
        assert_eq!(closed, Err(EpochError::TooFewReports { epoch: 1, reports: 2, quorum: 3 }));
        let idle = [report(1, &[]), report(2, &[]), report(3, &[])];
        let record = close_epoch(1, &elders(4), &idle, &members, (Amount::ZERO, Amount::MAX), &AppLedger::default())
            .expect("record");
        assert_eq!((record.total, record.items.len()), (Amount::ZERO, 0));
    }

    /// A deterministic stream for the sampling below.
    fn draws(seed: u64) -> impl Iterator<Item = u64> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        std::iter::repeat_with(move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        })
    }

    /// Challenges each elder sends a farmer per epoch in the property below.
    const SAMPLES: u32 = 200;
    /// The error this module states for SAMPLES challenges per elder: a farmer's proven
    /// bytes are within this fraction of its duty of the bytes it really holds (Hoeffding:
    /// one elder's estimate is off by more with probability <= 2·exp(-2·200·0.2²) < 10⁻⁶,
    /// and the median of five needs three of them off).
    const STATED_ERROR: f64 = 0.2;

    proptest! {
        /// Minting the emission epoch after epoch never passes the cap.
        #[test]
        fn emission_never_passes_the_cap(start in 0u64..=Amount::MAX.nanos(), epochs in 1usize..2000) {
            let mut supply = Amount::from_nanos(start).expect("amount");
            for _ in 0..epochs {
                let minted = emission(supply);
                supply = supply.checked_add(minted).expect("emission stays under the cap");
                prop_assert!(supply <= Amount::MAX);
            }
        }

        /// Whatever use the elders agree on, no app's share of use passes what was paid
        /// to the farmers through it, and farmers and apps together get exactly the total.
        #[test]
        fn no_app_earns_from_use_more_than_was_paid_through_it(
            apps in proptest::collection::vec((0u64..1_000_000_000_000, 0u64..1_000_000, 0u64..1_000_000_000), 1..6),
            supply in 0u64..=Amount::MAX.nanos() / 2,
        ) {
            let ids: Vec<AppId> = (0..apps.len()).map(|n| AppId([n as u8 + 1; 32])).collect();
            let ledger = AppLedger {
                apps: ids.iter().zip(&apps).map(|(app, (use_allowance, _, fees))| (*app, AppBalance {
                    payout: id(77),
                    unpaid_fees: Amount::from_nanos(*fees).expect("amount"),
                    use_allowance: Amount::from_nanos(*use_allowance).expect("amount"),
                    usage_paid: 0,
                })).collect(),
            };
            let usage: BTreeMap<AppId, u64> = ids.iter().zip(&apps).map(|(app, (_, uses, _))| (*app, *uses)).collect();
            let reports: Vec<EpochReport> =
                (1..=3).map(|elder| EpochReport { usage: usage.clone(), ..report(elder, &[(10, 1, 1)]) }).collect();
            let fees: u64 = apps.iter().map(|(_, _, fees)| fees).sum();
            let funds = funds(supply, fees);
            let record = close_epoch(1, &elders(4), &reports, &farmers(&[(10, 1 << 20)]), funds, &ledger).expect("record");
            for item in &record.apps {
                prop_assert!(item.usage_share <= ledger.apps[&item.app].use_allowance);
                prop_assert!(item.fees <= ledger.apps[&item.app].unpaid_fees);
            }
            let paid: u64 = record.items.iter().map(|i| i.amount.nanos()).sum::<u64>()
                + record.apps.iter().map(|i| i.amount.nanos()).sum::<u64>();
            prop_assert_eq!(paid, record.total.nanos());
        }

        /// Items sum to the total, to the nano, and the record does not depend on the order
        /// the reports arrived in.
        #[test]
        fn items_add_up_and_order_does_not_matter(
            verdicts in proptest::collection::vec((1u8..8, 10u8..16, 0u32..20, 1u32..20), 0..60),
            duties in proptest::collection::vec(0u64..(1 << 40), 6),
            supply in 0u64..=Amount::MAX.nanos(),
            pool in 0u64..1_000_000_000_000,
        ) {
            let mut reports: Vec<EpochReport> = (1..=7).map(|e| report(e, &[])).collect();
            for (elder, holder, passed, sampled) in verdicts {
                reports[usize::from(elder - 1)].verdicts.push(Verdict { holder: id(holder), sampled, passed });
            }
            let members: BTreeMap<AccountId, Farmer> = (10u8..16).zip(duties).map(|(n, bytes)| (id(n), Farmer { reward: id(n), bytes, chunks: 1 })).collect();
            let funds = funds(supply, pool);
            let record = close_epoch(1, &elders(7), &reports, &members, funds, &AppLedger::default()).expect("record");
            let sum: u64 = record.items.iter().map(|i| i.amount.nanos()).sum();
            prop_assert_eq!(sum, record.total.nanos());
            prop_assert_eq!(record.total.nanos(), record.minted.nanos() + record.from_pool.nanos());
            prop_assert!(funds.0.nanos() + record.minted.nanos() <= Amount::MAX.nanos());
            reports.reverse();
            prop_assert_eq!(close_epoch(1, &elders(7), &reports, &members, funds, &AppLedger::default()).expect("record"), record);
        }

        /// With random holdings (1 to 10,000 chunks of 1 MiB per farmer) and random losses,
        /// every farmer's proven bytes are within the stated error of what it really holds,
        /// when five honest elders each challenge it on SAMPLES chunks drawn from its duty;
        /// and farmers that lost nothing are paid exactly in proportion to their duties.
        #[test]
        fn rewards_follow_the_bytes_each_farmer_holds(
            holdings in proptest::collection::vec((1u64..=10_000, 0u64..=100), 1..12),
            seed in any::<u64>(),
        ) {
            const MIB: u64 = 1 << 20;
            let members: BTreeMap<AccountId, Farmer> = holdings.iter().enumerate()
                .map(|(i, (chunks, _))| (AccountId([i as u8 + 20; 32]), Farmer { reward: AccountId([i as u8 + 20; 32]), bytes: chunks * MIB, chunks: *chunks }))
                .collect();
            let reports: Vec<EpochReport> = (1..=5u8).map(|elder| {
                let mut draw = draws(seed ^ u64::from(elder));
                let verdicts = holdings.iter().enumerate().map(|(i, (chunks, lost_percent))| {
                    // The farmer kept the first (100 - lost)% of its chunks.
                    let kept = chunks * (100 - lost_percent) / 100;
                    let passed = (0..SAMPLES).filter(|_| draw.next().unwrap_or(0) % chunks < kept).count() as u32;
                    Verdict { holder: AccountId([i as u8 + 20; 32]), sampled: SAMPLES, passed }
                }).collect();
                EpochReport { elder: id(elder), epoch: 1, verdicts, usage: BTreeMap::new(), beacon: Default::default() }
            }).collect();
            let record = close_epoch(1, &elders(5), &reports, &members, funds(1 << 55, 0), &AppLedger::default()).expect("record");
            for (i, (chunks, lost_percent)) in holdings.iter().enumerate() {
                let farmer = AccountId([i as u8 + 20; 32]);
                let proven = record.items.iter().find(|item| item.farmer == farmer).map_or(0, |item| item.proven_bytes);
                let held = (chunks * (100 - lost_percent) / 100) * MIB;
                let error = (proven as f64 - held as f64).abs() / (chunks * MIB) as f64;
                prop_assert!(error <= STATED_ERROR, "farmer {i}: proven {proven}, held {held}, error {error:.3}");
            }
            let whole: Vec<&MintItem> = record.items.iter()
                .filter(|item| item.proven_bytes == members[&item.farmer].bytes).collect();
            for pair in whole.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let cross = u128::from(a.amount.nanos()) * u128::from(b.proven_bytes);
                let other = u128::from(b.amount.nanos()) * u128::from(a.proven_bytes);
                // Within a nano of each share: the split's rounding.
                let slack = u128::from(a.proven_bytes.max(b.proven_bytes)) * 2;
                prop_assert!(cross.abs_diff(other) <= slack, "{} vs {}", a.amount, b.amount);
            }
        }
    }
}
