//! What storing costs. The section quotes a price per MiB that rises with its fullness:
//! cheap while there is room, steeply dearer as free space runs out, so a filling
//! section both slows uploads and pays farmers more to add disk. `specs/economics.md`
//! gives the reasons for the shape.

use crate::{AccountId, Amount, AppId, Digest, TransferOrder};

/// Hash context of the pool account's derivation.
const POOL_CONTEXT: &str = "acre 2026 section pool v1";
/// Hash context of the digest a store payment's memo carries.
const STORE_PAYMENT_CONTEXT: &str = "acre 2026 store payment v1";
/// How a store payment's memo starts.
pub const STORE_MEMO_PREFIX: &str = "store:";

/// The price of storing one MiB in an empty section, in nanos: 0.01 credits.
pub const BASE_NANOS_PER_MIB: u64 = 10_000_000;
/// Bytes per priced unit; a chunk is priced by the MiBs it starts.
const MIB: u64 = 1 << 20;

/// The price of storing `bytes` in a section whose holders keep `used` of `capacity`
/// bytes: `BASE × ceil(bytes / MiB) × (capacity / free)²`. `None` when the section is
/// full (nothing is free) or the price would pass the supply cap.
pub fn store_cost(bytes: u64, used: u64, capacity: u64) -> Option<Amount> {
    let free = capacity.checked_sub(used).filter(|&free| free > 0)?;
    let units = u128::from(bytes.div_ceil(MIB));
    let (capacity, free) = (u128::from(capacity), u128::from(free));
    // Divide last, rounding up, so a quote never undercharges.
    let numerator = u128::from(BASE_NANOS_PER_MIB).checked_mul(units)?.checked_mul(capacity * capacity)?;
    let nanos = numerator.div_ceil(free * free);
    Amount::from_nanos(u64::try_from(nanos).ok()?).ok()
}

/// The bytes a list of chunk sizes is priced as: each chunk by the MiBs it starts, so a
/// million one-byte chunks cost a million units, not one. `None` if the sum overflows.
pub fn billable_bytes(sizes: impl IntoIterator<Item = u64>) -> Option<u64> {
    sizes.into_iter().try_fold(0u64, |sum, size| sum.checked_add(size.div_ceil(MIB).checked_mul(MIB)?))
}

/// The account a section's store payments go to: a public key nobody holds the secret of,
/// found by hashing the section's prefix with a counter until the hash is a strong curve
/// point. No order from it can ever be signed; only the agreed epoch record pays out of
/// it. Every elder derives the same account from the prefix alone.
pub fn pool_account(prefix: &str) -> AccountId {
    // About half of all hashes are points; the loop ends within a few rounds.
    let mut counter = 0u64;
    loop {
        let candidate = AccountId(Digest::derive(POOL_CONTEXT, &[prefix.as_bytes(), &counter.to_le_bytes()]).0);
        if candidate.verifying_key().is_some() {
            return candidate;
        }
        counter = counter.wrapping_add(1);
    }
}

/// The memo that binds a store payment to exactly these chunks: `store:` and the hex of a
/// digest of their addresses and sizes, in order. A certificate paying for one set of
/// chunks therefore names no other set.
pub fn store_memo(chunks: &[([u8; 32], u64)]) -> String {
    let mut bytes = Vec::with_capacity(chunks.len() * 40);
    for (address, size) in chunks {
        bytes.extend_from_slice(address);
        bytes.extend_from_slice(&size.to_le_bytes());
    }
    format!("{STORE_MEMO_PREFIX}{}", Digest::derive(STORE_PAYMENT_CONTEXT, &[&bytes]))
}

/// What follows the store memo when a payment carries an app's fee: the fee in nanos.
const APP_FEE_MARK: &str = ";app-fee=";

/// The memo of a store payment made through an app: the store memo, then the fee the payer
/// pays the app (part of the amount), so the section credits the app exactly that.
pub fn store_memo_with_app_fee(chunks: &[([u8; 32], u64)], fee: Option<Amount>) -> String {
    match fee {
        Some(fee) => format!("{}{APP_FEE_MARK}{}", store_memo(chunks), fee.nanos()),
        None => store_memo(chunks),
    }
}

/// The app a store payment was made through and the fee it declares for it, if any.
pub fn app_fee_of(order: &TransferOrder) -> Option<(AppId, Amount)> {
    let app = order.app?;
    let (_, nanos) = order.memo.split_once(APP_FEE_MARK)?;
    let fee = Amount::from_nanos(nanos.parse().ok()?).ok()?;
    (fee <= order.amount).then_some((app, fee))
}

/// Why a certified transfer does not pay for storing a chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorePaymentError {
    /// The credits went elsewhere than the section's pool.
    #[error("the payment went to {to}, not to the section's pool {pool}")]
    WrongAccount {
        /// Where they went.
        to: AccountId,
        /// The pool.
        pool: AccountId,
    },
    /// The memo does not name the chunk list given with the payment.
    #[error("the payment's memo does not name these chunks (it must be `store:` and the digest of their list)")]
    MemoMismatch,
    /// The chunk is not in the list the payment names.
    #[error("the payment is for other chunks")]
    NotForChunk,
    /// Less than the section's price for the list.
    #[error("the payment of {paid} is less than the {required} the section asks for these chunks")]
    TooSmall {
        /// What the certificate moved.
        paid: Amount,
        /// The price.
        required: Amount,
    },
}

impl StorePaymentError {
    /// The stable code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            StorePaymentError::WrongAccount { .. } => "payment_wrong_account",
            StorePaymentError::MemoMismatch => "payment_memo_mismatch",
            StorePaymentError::NotForChunk => "payment_not_for_chunk",
            StorePaymentError::TooSmall { .. } => "payment_too_small",
        }
    }
}

/// Checks that `order` (already certified) pays the section's `pool` for exactly the
/// `chunks` listed, that `chunk` is among them, and that it covers `required`.
pub fn check_store_payment(
    order: &TransferOrder,
    pool: &AccountId,
    chunks: &[([u8; 32], u64)],
    chunk: &([u8; 32], u64),
    required: Amount,
) -> Result<(), StorePaymentError> {
    if order.to != *pool {
        return Err(StorePaymentError::WrongAccount { to: order.to, pool: *pool });
    }
    let memo = store_memo(chunks);
    let fee = app_fee_of(order).map(|(_, fee)| fee);
    if order.memo != memo && order.memo != store_memo_with_app_fee(chunks, fee) {
        return Err(StorePaymentError::MemoMismatch);
    }
    if !chunks.contains(chunk) {
        return Err(StorePaymentError::NotForChunk);
    }
    if order.amount < required {
        return Err(StorePaymentError::TooSmall { paid: order.amount, required });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_empty_section_charges_the_base_and_a_full_one_quotes_nothing() {
        let nanos = |bytes, used, capacity| store_cost(bytes, used, capacity).map(Amount::nanos);
        assert_eq!(nanos(MIB, 0, 1 << 40), Some(BASE_NANOS_PER_MIB));
        assert_eq!(nanos(1, 0, 1 << 40), Some(BASE_NANOS_PER_MIB), "a started MiB counts whole");
        assert_eq!(store_cost(0, 0, 1 << 40), Some(Amount::ZERO));
        assert_eq!(store_cost(MIB, 1 << 40, 1 << 40), None);
        assert_eq!(store_cost(MIB, 2, 1), None, "more used than capacity is full");
        let half = store_cost(MIB, 1 << 39, 1 << 40).expect("quote");
        assert_eq!(half.nanos(), 4 * BASE_NANOS_PER_MIB, "half full costs four times as much");
        assert_eq!(store_cost(u64::MAX, u64::MAX - 1, u64::MAX), None, "past the cap is no quote");
    }

    #[test]
    fn each_chunk_is_billed_by_the_mibs_it_starts() {
        assert_eq!(billable_bytes([1, 1, 1]), Some(3 * MIB));
        assert_eq!(billable_bytes([MIB, MIB + 1]), Some(3 * MIB));
        assert_eq!(billable_bytes([]), Some(0));
        assert_eq!(billable_bytes([u64::MAX, 1]), None);
    }

    #[test]
    fn the_pool_is_a_valid_account_that_depends_on_the_prefix_only() {
        let pool = pool_account("");
        assert!(pool.verifying_key().is_some(), "credits sent there are not burnt");
        assert_eq!(pool_account(""), pool, "every elder derives the same pool");
        assert_ne!(pool_account("1"), pool, "each section has its own");
    }

    #[test]
    fn a_store_memo_names_exactly_its_chunks() {
        let (a, b) = (([1; 32], 10), ([2; 32], 20));
        let memo = store_memo(&[a, b]);
        assert!(memo.starts_with(STORE_MEMO_PREFIX) && memo.len() <= crate::MAX_MEMO_BYTES);
        assert_ne!(memo, store_memo(&[b, a]), "order counts");
        assert_ne!(memo, store_memo(&[a]), "a subset is another payment");
        assert_ne!(memo, store_memo(&[a, ([2; 32], 21)]), "sizes count");
    }

    #[test]
    fn a_store_payment_must_name_its_chunks_reach_the_pool_and_cover_the_price() {
        let pool = pool_account("");
        let (a, b, c) = (([1; 32], 10), ([2; 32], 20), ([3; 32], 30));
        let price = Amount::from_nanos(1_000).expect("amount");
        let order = |to: AccountId, nanos: u64, memo: String| TransferOrder {
            network: crate::Digest::default(),
            from: AccountId([9; 32]),
            to,
            amount: Amount::from_nanos(nanos).expect("amount"),
            sequence: 0,
            app: None,
            memo,
            hidden: None,
        };
        let paid = order(pool, 1_000, store_memo(&[a, b]));
        assert_eq!(check_store_payment(&paid, &pool, &[a, b], &b, price), Ok(()));
        assert_eq!(check_store_payment(&paid, &pool, &[a, b], &c, price), Err(StorePaymentError::NotForChunk));
        assert_eq!(
            check_store_payment(&paid, &pool, &[a, c], &c, price),
            Err(StorePaymentError::MemoMismatch),
            "a payment cannot be reused for another list"
        );
        let short = order(pool, 999, store_memo(&[a]));
        assert!(matches!(check_store_payment(&short, &pool, &[a], &a, price), Err(StorePaymentError::TooSmall { .. })));
        let elsewhere = order(AccountId([8; 32]), 1_000, store_memo(&[a]));
        assert!(matches!(
            check_store_payment(&elsewhere, &pool, &[a], &a, price),
            Err(StorePaymentError::WrongAccount { .. })
        ));
    }

    proptest! {
        /// Never cheaper for more bytes or a fuller section.
        #[test]
        fn the_price_rises_with_bytes_and_fullness(
            bytes in 0u64..(1 << 34),
            more in 0u64..(1 << 30),
            capacity in 1u64..(1 << 50),
            used_part in 0.0f64..1.0,
            fuller_part in 0.0f64..1.0,
        ) {
            let used = (capacity as f64 * used_part) as u64;
            let fuller = used + ((capacity - used) as f64 * fuller_part) as u64;
            if let (Some(base), Some(larger)) = (store_cost(bytes, used, capacity), store_cost(bytes + more, used, capacity)) {
                prop_assert!(larger >= base);
            }
            if let (Some(base), Some(dearer)) = (store_cost(bytes, used, capacity), store_cost(bytes, fuller, capacity)) {
                prop_assert!(dearer >= base);
            }
        }
    }
}
