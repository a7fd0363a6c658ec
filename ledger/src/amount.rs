//! Credit amounts: `u64` nanos under a hard supply cap, with checked arithmetic and
//! decimal-string text so JSON never carries a float.

use std::fmt;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Nanos in one credit.
pub const NANOS_PER_CREDIT: u64 = 1_000_000_000;
/// The most credits that can ever exist (2^32, as SAFE's safecoin).
pub const MAX_CREDITS: u64 = 1 << 32;
/// Most decimal places an amount's text may carry: one nano.
const MAX_DECIMALS: usize = 9;

/// An amount of credits in nanos, never above the supply cap.
///
/// Every constructor checks the cap, so any `Amount` in hand is a possible balance; the
/// arithmetic returns `None` instead of wrapping or passing the cap.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(u64);

/// Why a number or text is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// The text was empty.
    #[error("amount is empty")]
    Empty,
    /// The text held something other than digits and one decimal point.
    #[error("amount {0:?} is not a decimal number such as \"12.5\"")]
    Malformed(String),
    /// More than nine decimal places: finer than one nano.
    #[error("amount {0:?} has more than 9 decimal places")]
    TooPrecise(String),
    /// Above the 2^32-credit supply cap.
    #[error("amount exceeds the supply cap of 4294967296 credits")]
    AboveCap,
}

impl Amount {
    /// No credits.
    pub const ZERO: Amount = Amount(0);
    /// One credit.
    pub const ONE_CREDIT: Amount = Amount(NANOS_PER_CREDIT);
    /// The supply cap itself.
    pub const MAX: Amount = Amount(MAX_CREDITS * NANOS_PER_CREDIT);

    /// An amount of `nanos`, refused above the cap.
    pub fn from_nanos(nanos: u64) -> Result<Self, AmountError> {
        if nanos > Self::MAX.0 {
            return Err(AmountError::AboveCap);
        }
        Ok(Amount(nanos))
    }

    /// An amount of whole `credits`, refused above the cap.
    pub fn from_credits(credits: u64) -> Result<Self, AmountError> {
        credits.checked_mul(NANOS_PER_CREDIT).ok_or(AmountError::AboveCap).and_then(Self::from_nanos)
    }

    /// The amount in nanos.
    pub const fn nanos(self) -> u64 {
        self.0
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The sum, or `None` if it would pass the cap.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).and_then(|n| Self::from_nanos(n).ok())
    }

    /// The difference, or `None` if it would be negative.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }
}

impl FromStr for Amount {
    type Err = AmountError;

    /// Parses "12", "12.5" or "0.000000001"; refuses signs, exponents, spaces, a bare
    /// or trailing point, and more than nine decimals.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        let malformed = || AmountError::Malformed(text.to_owned());
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
            Some(_) => return Err(malformed()),
            None => (text, ""),
        };
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(malformed());
        }
        if fraction.len() > MAX_DECIMALS {
            return Err(AmountError::TooPrecise(text.to_owned()));
        }
        // Leading zeros are harmless; strip them so a long run of them is not an overflow.
        let whole = whole.trim_start_matches('0');
        let credits: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| AmountError::AboveCap)? };
        let scale = 10u64.pow((MAX_DECIMALS - fraction.len()) as u32);
        let fraction_nanos =
            if fraction.is_empty() { 0 } else { fraction.parse::<u64>().map_err(|_| malformed())? * scale };
        credits
            .checked_mul(NANOS_PER_CREDIT)
            .and_then(|n| n.checked_add(fraction_nanos))
            .ok_or(AmountError::AboveCap)
            .and_then(Self::from_nanos)
    }
}

impl fmt::Display for Amount {
    /// The shortest exact decimal: "12.5", "3", "0.000000001".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / NANOS_PER_CREDIT;
        let fraction = self.0 % NANOS_PER_CREDIT;
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{fraction:09}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({self})")
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            crate::ids::deserialize_text(deserializer)
        } else {
            Amount::from_nanos(u64::deserialize(deserializer)?).map_err(de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_decimal_strings() {
        let cases = [
            ("12.5", 12_500_000_000, "12.5"),
            ("0.000000001", 1, "0.000000001"),
            ("007", 7 * NANOS_PER_CREDIT, "7"),
            ("1.10", 1_100_000_000, "1.1"),
            ("4294967296", Amount::MAX.0, "4294967296"),
        ];
        for (text, nanos, printed) in cases {
            let amount: Amount = text.parse().expect(text);
            assert_eq!(amount.nanos(), nanos, "{text}");
            assert_eq!(amount.to_string(), printed);
        }
    }

    #[test]
    fn refuses_what_is_not_an_exact_amount() {
        for bad in ["", ".5", "5.", "-1", "+1", "1e9", " 1", "1,5", "1.2.3", "0x10"] {
            assert!(bad.parse::<Amount>().is_err(), "{bad:?} was accepted");
        }
        assert!(matches!("0.0000000001".parse::<Amount>(), Err(AmountError::TooPrecise(_))));
        assert_eq!("4294967296.000000001".parse::<Amount>(), Err(AmountError::AboveCap));
        assert_eq!("99999999999999999999999".parse::<Amount>(), Err(AmountError::AboveCap));
    }

    #[test]
    fn arithmetic_is_checked_against_zero_and_the_cap() {
        let one = Amount::from_credits(1).expect("one credit");
        assert_eq!(Amount::MAX.checked_add(one), None);
        assert_eq!(Amount::ZERO.checked_sub(one), None);
        assert_eq!(one.checked_sub(one), Some(Amount::ZERO));
        assert!(Amount::from_nanos(u64::MAX).is_err());
    }

    #[test]
    fn json_carries_strings_and_refuses_numbers_above_the_cap() {
        let amount: Amount = "2.25".parse().expect("amount");
        assert_eq!(serde_json::to_string(&amount).expect("json"), "\"2.25\"");
        assert_eq!(serde_json::from_str::<Amount>("\"2.25\"").expect("parse"), amount);
        assert!(serde_json::from_str::<Amount>("2.25").is_err());
        let bytes = postcard::to_allocvec(&u64::MAX).expect("encode");
        assert!(postcard::from_bytes::<Amount>(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn text_round_trips(nanos in 0..=Amount::MAX.0) {
            let amount = Amount::from_nanos(nanos).expect("under cap");
            prop_assert_eq!(amount.to_string().parse::<Amount>(), Ok(amount));
        }
    }
}
