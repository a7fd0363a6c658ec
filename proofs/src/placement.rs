//! Who holds a chunk: the members whose names are closest to its address by XOR, the
//! Kademlia metric. Every elder computes it from the membership alone, so none has to be
//! told who must hold what.

use std::collections::BTreeMap;

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

/// A copy to make after the membership changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The chunk.
    pub chunk: ChunkAddress,
    /// Its size.
    pub size: u64,
    /// The member that must now hold it.
    pub to: [u8; 32],
    /// Members that held it before and still belong, to copy from, closest first.
    pub from: Vec<[u8; 32]>,
}

/// The copies to make when membership goes from `before` to `after`, so every chunk
/// stands on its [`COPIES`] closest members again: one per chunk and new holder. A chunk
/// none of whose holders remain cannot be repaired and is left out (it is lost).
pub fn repairs(chunks: &BTreeMap<ChunkAddress, u64>, before: &[[u8; 32]], after: &[[u8; 32]]) -> Vec<Repair> {
    let mut repairs = Vec::new();
    for (chunk, size) in chunks {
        let old = closest(chunk, before, COPIES);
        let from: Vec<[u8; 32]> = old.iter().filter(|holder| after.contains(holder)).copied().collect();
        if from.is_empty() {
            continue;
        }
        for to in closest(chunk, after, COPIES).into_iter().filter(|holder| !old.contains(holder)) {
            repairs.push(Repair { chunk: *chunk, size: *size, to, from: from.clone() });
        }
    }
    repairs
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

    #[test]
    fn a_departed_holder_is_replaced_by_the_next_closest() {
        let members: Vec<[u8; 32]> = (1..=7u8).map(|i| node_name(&[i; 32])).collect();
        let chunks: BTreeMap<ChunkAddress, u64> =
            (0..50u8).map(|i| (ChunkAddress::of(&[i]), u64::from(i) + 1)).collect();
        let gone = members[3];
        let after: Vec<[u8; 32]> = members.iter().copied().filter(|m| *m != gone).collect();
        let planned = repairs(&chunks, &members, &after);
        let held_by_gone = chunks.keys().filter(|c| closest(c, &members, COPIES).contains(&gone)).count();
        assert_eq!(planned.len(), held_by_gone, "one new copy per chunk the departed member held");
        for repair in &planned {
            assert_eq!(repair.from.len(), COPIES - 1, "the three remaining holders can each serve it");
            assert!(closest(&repair.chunk, &after, COPIES).contains(&repair.to));
        }
        assert!(repairs(&chunks, &members, &members).is_empty(), "no change, no copies");
    }

    proptest! {
        /// After the planned copies every chunk stands on its closest members again,
        /// whoever left or joined, as long as one old holder remains.
        #[test]
        fn repairs_restore_every_chunk_to_its_closest_members(
            seeds in proptest::collection::vec(any::<u8>(), 1..30),
            before in proptest::collection::btree_set(any::<[u8; 32]>(), 4..12),
            leave in proptest::collection::vec(any::<proptest::sample::Index>(), 0..3),
            join in proptest::collection::vec(any::<[u8; 32]>(), 0..3),
        ) {
            let before: Vec<[u8; 32]> = before.into_iter().collect();
            let chunks: BTreeMap<ChunkAddress, u64> = seeds.iter().map(|s| (ChunkAddress::of(&[*s]), 1)).collect();
            let leaving: Vec<[u8; 32]> = leave.iter().map(|i| before[i.index(before.len())]).collect();
            let mut after: Vec<[u8; 32]> = before.iter().copied().filter(|m| !leaving.contains(m)).collect();
            after.extend(join);
            let planned = repairs(&chunks, &before, &after);
            for chunk in chunks.keys() {
                let old = closest(chunk, &before, COPIES);
                if !old.iter().any(|h| after.contains(h)) {
                    continue;
                }
                let mut holders: Vec<[u8; 32]> = old.into_iter().filter(|h| after.contains(h)).collect();
                holders.extend(planned.iter().filter(|r| r.chunk == *chunk).map(|r| r.to));
                for wanted in closest(chunk, &after, COPIES) {
                    prop_assert!(holders.contains(&wanted));
                }
            }
        }

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
