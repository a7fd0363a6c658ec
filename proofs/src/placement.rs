//! Who holds a chunk: the members whose names are closest to its address by XOR, the
//! Kademlia metric. Every elder computes it from the membership alone, so none has to be
//! told who must hold what.

use crate::chunk::ChunkAddress;

/// Copies of every chunk a section keeps.
pub const COPIES: usize = 4;

/// A node's name in the XOR space: the BLAKE3 hash of its public key, so names spread
/// evenly whatever the keys look like.
pub fn node_name(public_key: &[u8; 32]) -> [u8; 32] {
    *blake3::hash(public_key).as_bytes()
}

/// The `count` members closest to `address` (fewer if there are fewer members), closest
/// first. Names are 32 bytes: a node's key.
pub fn closest(address: &ChunkAddress, members: &[[u8; 32]], count: usize) -> Vec<[u8; 32]> {
    let mut ranked: Vec<([u8; 32], [u8; 32])> =
        members.iter().map(|name| (distance(&address.0, name), *name)).collect();
    ranked.sort_unstable();
    ranked.dedup_by(|a, b| a.1 == b.1);
    ranked.into_iter().take(count).map(|(_, name)| name).collect()
}

/// The XOR distance between two names, compared as a big-endian number.
pub fn distance(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut distance = [0u8; 32];
    for (byte, (a, b)) in distance.iter_mut().zip(a.iter().zip(b)) {
        *byte = a ^ b;
    }
    distance
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_closest_by_xor_hold_it() {
        let address = ChunkAddress([0b1000_0000; 32]);
        let names = [[0b1000_0001; 32], [0; 32], [0b1100_0000; 32], [0b1000_0000; 32], [0xff; 32]];
        assert_eq!(closest(&address, &names, 2), vec![[0b1000_0000; 32], [0b1000_0001; 32]]);
        assert_eq!(closest(&address, &names[..1], COPIES).len(), 1, "fewer members than copies");
    }

    proptest! {
        /// The order members are listed in does not matter, and every non-holder is
        /// farther than every holder.
        #[test]
        fn placement_depends_on_the_membership_alone(
            address in any::<[u8; 32]>(),
            mut members in proptest::collection::vec(any::<[u8; 32]>(), 1..20),
        ) {
            let address = ChunkAddress(address);
            let holders = closest(&address, &members, COPIES);
            members.reverse();
            prop_assert_eq!(&closest(&address, &members, COPIES), &holders);
            let farthest_holder = holders.iter().map(|h| distance(&address.0, h)).max().expect("a holder");
            for other in members.iter().filter(|m| !holders.contains(m)) {
                prop_assert!(distance(&address.0, other) > farthest_holder);
            }
        }
    }
}
