//! Closing an epoch: from the elders' audit reports to the record that mints farmers'
//! rewards. Pure and deterministic: every elder that applies the same reports computes the
//! same record, to the nano.
//!
//! - A holder's chunk counts as proven for the epoch only when a quorum of elders
//!   reported it passing (one fewer for a holder that is itself an elder, since no elder
//!   audits itself); one elder, or any f < n/3 of them, cannot mint for anyone.
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

/// One elder's audit results for an epoch: the (holder, chunk) pairs it saw pass, with
/// each chunk's size from its registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochReport {
    /// The reporting elder.
    pub elder: AccountId,
    /// The epoch reported on.
    pub epoch: u64,
    /// Chunks each holder proved to this elder, with their sizes.
    pub passed: Vec<ProvenChunk>,
    /// Uses of each app this elder has metered in all, counted from when it started: a
    /// running total, so elders that report at different moments still agree on it later.
    #[serde(default)]
    pub usage: BTreeMap<AppId, u64>,
}

/// A chunk a holder proved to an elder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProvenChunk {
    /// The holder.
    pub holder: AccountId,
    /// The chunk's address.
    pub chunk: [u8; 32],
    /// Its size in bytes.
    pub bytes: u64,
}

/// One farmer's line in an epoch record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintItem {
    /// The farmer (its node id).
    pub farmer: AccountId,
    /// Where its rewards go.
    pub reward_address: AccountId,
    /// Bytes it proved to a quorum of elders this epoch.
    pub proven_bytes: u64,
    /// Chunks it proved.
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
    /// Per app: its payout account, the fees collected and the uses already paid for.
    pub apps: BTreeMap<AppId, (AccountId, Amount, u64)>,
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
/// `supply` is the credits in existence (for the emission), `pool` what the section's pool
/// holds, `rewards` each farmer's reward address (its own id when absent).
pub fn close_epoch(
    epoch: u64,
    elders: &BTreeSet<AccountId>,
    reports: &[EpochReport],
    supply: Amount,
    pool: Amount,
    rewards: &BTreeMap<AccountId, AccountId>,
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
    // How many elders saw each (holder, chunk) pass; each elder counts once.
    let mut witnesses: BTreeMap<(AccountId, [u8; 32]), (usize, u64)> = BTreeMap::new();
    for report in latest.values() {
        let mut distinct: BTreeMap<(AccountId, [u8; 32]), u64> = BTreeMap::new();
        for proven in &report.passed {
            let bytes = distinct.entry((proven.holder, proven.chunk)).or_insert(proven.bytes);
            *bytes = (*bytes).min(proven.bytes);
        }
        for (key, bytes) in distinct {
            let entry = witnesses.entry(key).or_insert((0, bytes));
            entry.0 += 1;
            // Sizes come from each elder's registry; the smallest reported is paid.
            entry.1 = entry.1.min(bytes);
        }
    }
    let mut proven: BTreeMap<AccountId, (u64, u64)> = BTreeMap::new();
    for ((holder, _), (count, bytes)) in witnesses {
        // An elder does not audit itself, so an elder's chunks need one witness fewer:
        // still more than the f faulty elders a quorum tolerates.
        if count >= quorum - usize::from(elders.contains(&holder)) {
            let entry = proven.entry(holder).or_default();
            entry.0 = entry.0.saturating_add(bytes);
            entry.1 += 1;
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
            reward_address: rewards.get(farmer).copied().unwrap_or(*farmer),
            proven_bytes: *bytes,
            proven_chunks: *chunks,
            amount: Amount::from_nanos(nanos).unwrap_or(Amount::ZERO),
        })
        .collect();
    let from_pool = Amount::from_nanos(total.nanos() - minted.nanos()).unwrap_or(Amount::ZERO);
    Ok(EpochRecord { epoch, minted, from_pool, total, items, apps: app_items })
}

/// The apps' lines: each app's unpaid fees (out of the pool, capped by it) plus its part of
/// [`APP_SHARE_PERCENT`] of the emission, split by the uses a quorum of reports agree on
/// beyond those already paid for.
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
        .filter_map(|(app, (_, _, counted))| {
            let total = agreed.get(app).copied().unwrap_or(0).max(*counted);
            (total > *counted).then_some((*app, (total - counted, total)))
        })
        .collect();
    let share = if fresh.is_empty() { 0 } else { minted.nanos() / 100 * APP_SHARE_PERCENT };
    let weights: Vec<(AccountId, u64)> = fresh.iter().map(|(app, (uses, _))| (AccountId(app.0), *uses)).collect();
    let shares: BTreeMap<AppId, u64> = fresh.keys().copied().zip(split(share, weights)).collect();
    let mut fees_left = pool.nanos();
    apps.apps
        .iter()
        .filter_map(|(app, (payout, fees, counted))| {
            let fees = fees.nanos().min(fees_left);
            fees_left -= fees;
            let usage_share = shares.get(app).copied().unwrap_or(0);
            let (usage, usage_total) = fresh.get(app).copied().unwrap_or((0, *counted));
            (fees > 0 || usage_share > 0).then(|| AppItem {
                app: *app,
                payout: *payout,
                fees: Amount::from_nanos(fees).unwrap_or(Amount::ZERO),
                usage,
                usage_total,
                usage_share: Amount::from_nanos(usage_share).unwrap_or(Amount::ZERO),
                amount: Amount::from_nanos(fees + usage_share).unwrap_or(Amount::ZERO),
            })
        })
        .collect()
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

    fn report(elder: u8, passed: &[(u8, u8, u64)]) -> EpochReport {
        let passed = passed
            .iter()
            .map(|&(holder, chunk, bytes)| ProvenChunk { holder: id(holder), chunk: [chunk; 32], bytes })
            .collect();
        EpochReport { elder: id(elder), epoch: 1, passed, usage: BTreeMap::new() }
    }

    fn elders(count: u8) -> BTreeSet<AccountId> {
        (1..=count).map(id).collect()
    }

    #[test]
    fn apps_are_paid_their_fees_and_use_only_a_quorum_agrees_on() {
        let app = AppId([5; 32]);
        let apps = AppLedger { apps: BTreeMap::from([(app, (id(77), Amount::from_nanos(300).expect("fee"), 0))]) };
        let with_usage = |elder: u8, uses: u64| EpochReport {
            usage: BTreeMap::from([(app, uses)]),
            ..report(elder, &[(10, 1, 1 << 20)])
        };
        let supply = Amount::from_credits(1_000).expect("supply");
        let pool = Amount::from_nanos(1_000).expect("pool");
        // One elder claims use nobody else saw: the app gets its fee, no share of use.
        let reports = [with_usage(1, 1_000_000), with_usage(2, 0), with_usage(3, 0)];
        let record = close_epoch(1, &elders(4), &reports, supply, pool, &BTreeMap::new(), &apps).expect("record");
        assert_eq!(record.apps.len(), 1);
        assert_eq!((record.apps[0].fees.nanos(), record.apps[0].usage_share), (300, Amount::ZERO));
        // A quorum agrees on 40 uses: 10% of the emission goes to the app.
        let reports = [with_usage(1, 40), with_usage(2, 40), with_usage(3, 55)];
        let record = close_epoch(1, &elders(4), &reports, supply, pool, &BTreeMap::new(), &apps).expect("record");
        let item = &record.apps[0];
        assert_eq!((item.usage, item.usage_total), (40, 40));
        assert_eq!(item.usage_share.nanos(), emission(supply).nanos() / 100 * APP_SHARE_PERCENT);
        assert_eq!(item.amount.nanos(), item.fees.nanos() + item.usage_share.nanos());
        let paid: u64 = record.items.iter().map(|i| i.amount.nanos()).sum::<u64>() + item.amount.nanos();
        assert_eq!(paid, record.total.nanos(), "farmers and apps together get exactly the total");
    }

    #[test]
    fn a_chunk_counts_only_when_a_quorum_saw_it_pass() {
        // 4 elders, quorum 3. Farmer 10 proved chunk 1 to three elders, chunk 2 to one.
        let reports = [
            report(1, &[(10, 1, 1000), (10, 2, 500)]),
            report(2, &[(10, 1, 1000), (11, 3, 3000)]),
            report(3, &[(10, 1, 1000), (11, 3, 3000)]),
            report(4, &[(11, 3, 3000)]),
        ];
        let supply = Amount::from_credits(1_000).expect("amount");
        let pool = Amount::from_nanos(4_000).expect("amount");
        let record = close_epoch(
            1,
            &elders(4),
            &reports,
            supply,
            pool,
            &BTreeMap::from([(id(11), id(99))]),
            &AppLedger::default(),
        )
        .expect("record");
        assert_eq!(record.items.len(), 2);
        assert_eq!((record.items[0].farmer, record.items[0].proven_bytes), (id(10), 1000), "chunk 2 had one witness");
        assert_eq!((record.items[1].reward_address, record.items[1].proven_bytes), (id(99), 3000));
        assert_eq!(record.minted, emission(supply));
        assert_eq!(record.from_pool, pool);
        let sum: u64 = record.items.iter().map(|i| i.amount.nanos()).sum();
        assert_eq!(sum, record.total.nanos(), "the items add up");
        let share = record.items[1].amount.nanos();
        assert!(share.abs_diff(record.total.nanos() * 3 / 4) <= 1, "split by proven bytes, to the nano");
    }

    #[test]
    fn one_byzantine_elder_cannot_mint_for_a_holder_that_stores_nothing() {
        let honest = [report(1, &[(10, 1, 1000)]), report(2, &[(10, 1, 1000)]), report(3, &[(10, 1, 1000)])];
        let mut reports = honest.to_vec();
        reports.push(report(4, &[(66, 7, 1 << 20), (66, 8, 1 << 20)]));
        let record =
            close_epoch(1, &elders(4), &reports, Amount::ZERO, Amount::ZERO, &BTreeMap::new(), &AppLedger::default())
                .expect("record");
        assert!(record.items.iter().all(|item| item.farmer != id(66)));
        // Nor can it by repeating itself, or through a non-elder's reports.
        reports.push(report(4, &[(66, 7, 1 << 20)]));
        reports.push(report(50, &[(66, 7, 1 << 20)]));
        reports.push(report(51, &[(66, 7, 1 << 20)]));
        let record =
            close_epoch(1, &elders(4), &reports, Amount::ZERO, Amount::ZERO, &BTreeMap::new(), &AppLedger::default())
                .expect("record");
        assert!(record.items.iter().all(|item| item.farmer != id(66)));
    }

    #[test]
    fn too_few_reports_close_nothing_and_an_idle_epoch_mints_nothing() {
        let reports = [report(1, &[(10, 1, 1000)]), report(2, &[(10, 1, 1000)])];
        let closed =
            close_epoch(1, &elders(4), &reports, Amount::ZERO, Amount::ZERO, &BTreeMap::new(), &AppLedger::default());
        assert_eq!(closed, Err(EpochError::TooFewReports { epoch: 1, reports: 2, quorum: 3 }));
        let idle = [report(1, &[]), report(2, &[]), report(3, &[])];
        let record =
            close_epoch(1, &elders(4), &idle, Amount::ZERO, Amount::MAX, &BTreeMap::new(), &AppLedger::default())
                .expect("record");
        assert_eq!((record.total, record.items.len()), (Amount::ZERO, 0));
    }

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

        /// Items sum to the total, to the nano, and the record does not depend on the order
        /// the reports arrived in.
        #[test]
        fn items_add_up_and_order_does_not_matter(
            passes in proptest::collection::vec((1u8..8, 10u8..16, 0u8..6, 1u64..(1 << 20)), 0..60),
            supply in 0u64..=Amount::MAX.nanos(),
            pool in 0u64..1_000_000_000_000,
        ) {
            let mut reports: Vec<EpochReport> = (1..=7).map(|e| report(e, &[])).collect();
            for (elder, holder, chunk, bytes) in passes {
                reports[usize::from(elder - 1)].passed.push(ProvenChunk { holder: id(holder), chunk: [chunk; 32], bytes: bytes + u64::from(chunk) });
            }
            let supply = Amount::from_nanos(supply).expect("amount");
            let pool = Amount::from_nanos(pool).expect("amount");
            let record = close_epoch(1, &elders(7), &reports, supply, pool, &BTreeMap::new(), &AppLedger::default()).expect("record");
            let sum: u64 = record.items.iter().map(|i| i.amount.nanos()).sum();
            prop_assert_eq!(sum, record.total.nanos());
            prop_assert_eq!(record.total.nanos(), record.minted.nanos() + record.from_pool.nanos());
            prop_assert!(supply.nanos() + record.minted.nanos() <= Amount::MAX.nanos());
            reports.reverse();
            prop_assert_eq!(close_epoch(1, &elders(7), &reports, supply, pool, &BTreeMap::new(), &AppLedger::default()).expect("record"), record);
        }
    }
}
