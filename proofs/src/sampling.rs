//! How many blocks to challenge. If a holder lost a fraction `f` of a chunk's blocks, one
//! uniformly drawn block catches it with probability `f`; `c` independent draws catch it
//! with probability at least `1 - (1 - f)^c` (the bound of Ateniese et al., "Provable Data
//! Possession at Untrusted Stores", 2007; draws without replacement only do better).

/// The probability that `blocks` random blocks catch a holder missing `loss` of them.
pub fn detection_probability(loss: f64, blocks: u32) -> f64 {
    1.0 - (1.0 - loss.clamp(0.0, 1.0)).powf(f64::from(blocks))
}

/// The fewest blocks that catch a loss of `loss` (0 < loss <= 1) with probability at
/// least `confidence` (0 <= confidence < 1); `None` for arguments outside those ranges.
pub fn blocks_needed(loss: f64, confidence: f64) -> Option<u32> {
    if !(loss > 0.0 && loss <= 1.0 && (0.0..1.0).contains(&confidence)) {
        return None;
    }
    if loss == 1.0 {
        return Some(1);
    }
    let exact = (1.0 - confidence).ln() / (1.0 - loss).ln();
    // Rounding can leave the ceiling one short; step up until the bound holds.
    let mut blocks = exact.ceil().max(1.0) as u32;
    while detection_probability(loss, blocks) < confidence {
        blocks += 1;
    }
    Some(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_published_figures_come_out() {
        assert_eq!(blocks_needed(0.01, 0.99), Some(459), "1% loss at 99% confidence");
        assert_eq!(blocks_needed(0.10, 0.99), Some(44), "10% loss at 99% confidence");
        assert_eq!(blocks_needed(0.01, 0.95), Some(299));
        assert_eq!(blocks_needed(1.0, 0.99), Some(1));
        assert_eq!(blocks_needed(0.0, 0.99), None);
        assert_eq!(blocks_needed(0.1, 1.0), None);
    }

    proptest! {
        /// The answer is the least that suffices: one block fewer falls short.
        #[test]
        fn blocks_needed_is_the_least_that_suffices(loss in 0.0001f64..0.9999, confidence in 0.0f64..0.9999) {
            let blocks = blocks_needed(loss, confidence).expect("in range");
            prop_assert!(detection_probability(loss, blocks) >= confidence);
            if blocks > 1 {
                prop_assert!(detection_probability(loss, blocks - 1) < confidence);
            }
        }
    }
}
