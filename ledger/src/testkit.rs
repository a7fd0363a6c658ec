//! Deterministic keys and orders for tests and benchmarks of the ledger and its users.

use ed25519_dalek::SigningKey;

use crate::{AccountId, Amount, Digest, SignedOrder, TransferOrder};

/// `N` distinct signing keys derived from `seed`; the same seed gives the same keys.
pub fn keys<const N: usize>(seed: u64) -> [SigningKey; N] {
    std::array::from_fn(|i| key(seed, i as u64))
}

/// The `index`-th key of `seed`.
pub fn key(seed: u64, index: u64) -> SigningKey {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&seed.to_le_bytes());
    secret[8..16].copy_from_slice(&index.to_le_bytes());
    SigningKey::from_bytes(blake3::hash(&secret).as_bytes())
}

/// A signed order on `network` of `nanos` from `from` to `to` at `sequence`, without app
/// or memo.
pub fn order_from(network: &Digest, from: &SigningKey, to: &SigningKey, nanos: u64, sequence: u64) -> SignedOrder {
    TransferOrder {
        network: *network,
        from: AccountId::of(from),
        to: AccountId::of(to),
        amount: Amount::from_nanos(nanos).unwrap_or(Amount::MAX),
        sequence,
        app: None,
        memo: String::new(),
        hidden: None,
    }
    .sign(from)
}

use crate::store::{MemoryStore, Store};
use crate::{Allocation, Certificate, CertificateBuilder, Committee, Confirmation, DurableElder, LedgerError, Vote};

/// One elder of a [`LocalCommittee`].
#[derive(Debug)]
pub struct Member<S> {
    /// The elder and its store.
    pub elder: DurableElder<S>,
    /// Whether messages reach it; an offline elder is skipped.
    pub online: bool,
}

/// An in-process committee, driven through the same calls the network makes.
#[derive(Debug)]
pub struct LocalCommittee<S> {
    /// The committee every elder and client checks against.
    pub committee: Committee,
    /// The elders, in committee order.
    pub members: Vec<Member<S>>,
    /// The keys the members vote with (a wrong one stays wrong here).
    pub signers: Vec<SigningKey>,
}

impl LocalCommittee<MemoryStore> {
    /// `size` elders on memory stores, keyed from `seed`.
    pub fn in_memory(size: usize, seed: u64) -> Self {
        Self::new(size, seed, |_| MemoryStore::new())
    }
}

impl<S: Store> LocalCommittee<S> {
    /// The network its orders must name: its first elder's (all agree once genesis is in).
    pub fn network(&self) -> Digest {
        self.members.first().map_or_else(|| crate::network_id(&self.committee, &[]), |m| m.elder.state().network())
    }

    /// `size` elders keyed from `seed`, each on the store `open_store(index)` returns.
    pub fn new(size: usize, seed: u64, mut open_store: impl FnMut(usize) -> S) -> Self {
        let signers: Vec<SigningKey> = (0..size as u64).map(|i| key(seed, i)).collect();
        let committee = Committee::new(signers.iter().map(AccountId::of)).unwrap_or_else(|e| panic!("{e}"));
        let members = signers
            .iter()
            .enumerate()
            .map(|(index, signer)| Member {
                elder: DurableElder::open(committee.clone(), signer.clone(), open_store(index))
                    .unwrap_or_else(|e| panic!("{e}")),
                online: true,
            })
            .collect();
        LocalCommittee { committee, members, signers }
    }

    /// Makes member `index` vote with a key the committee does not know, on a fresh store.
    pub fn give_wrong_key(&mut self, index: usize, store: S) {
        let wrong = key(u64::MAX, index as u64);
        self.signers[index] = wrong.clone();
        self.members[index].elder =
            DurableElder::open(self.committee.clone(), wrong, store).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Restarts member `index` as after a crash: its memory is dropped and it recovers
    /// from the store that `reopen` makes of its old one (for RocksDB: close, open again).
    pub fn restart(&mut self, index: usize, reopen: impl FnOnce(S) -> S) {
        let member = self.members.remove(index);
        let store = reopen(member.elder.into_store());
        let elder = DurableElder::open(self.committee.clone(), self.signers[index].clone(), store)
            .unwrap_or_else(|e| panic!("{e}"));
        self.members.insert(index, Member { elder, online: member.online });
    }

    /// Genesis at every member, online or not (it precedes the network).
    pub fn genesis(&mut self, allocations: &[Allocation]) {
        for member in &mut self.members {
            member.elder.genesis(allocations.to_vec()).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Sends `order` to the online members among `indices`; returns each answer and the
    /// certificate if a quorum of valid votes came back.
    pub fn collect_votes(
        &mut self,
        indices: &[usize],
        order: &SignedOrder,
    ) -> (Option<Certificate>, Vec<Result<Vote, LedgerError>>) {
        let mut builder = CertificateBuilder::new(self.committee.clone(), order.order.clone());
        let mut answers = Vec::with_capacity(indices.len());
        for &index in indices {
            let member = &mut self.members[index];
            if member.online {
                answers.push(member.elder.handle_order(order));
            }
        }
        let certificate = answers.iter().flatten().filter_map(|vote| builder.add(vote).ok()).last().flatten();
        (certificate, answers)
    }

    /// Hands a certificate to every online member.
    pub fn confirm(&mut self, certificate: &Certificate) -> Vec<Result<Confirmation, LedgerError>> {
        self.online_members().map(|member| member.elder.handle_certificate(certificate)).collect()
    }

    /// A whole transfer: votes from every online member, then the certificate to each.
    /// Fails with the members' refusals if no quorum of valid votes formed.
    pub fn transfer(&mut self, order: &SignedOrder) -> Result<Certificate, Vec<LedgerError>> {
        let all: Vec<usize> = (0..self.members.len()).collect();
        let (certificate, answers) = self.collect_votes(&all, order);
        let certificate = certificate.ok_or_else(|| answers.into_iter().filter_map(Result::err).collect::<Vec<_>>())?;
        let refusals: Vec<LedgerError> = self.confirm(&certificate).into_iter().filter_map(Result::err).collect();
        if refusals.is_empty() {
            Ok(certificate)
        } else {
            Err(refusals)
        }
    }

    fn online_members(&mut self) -> impl Iterator<Item = &mut Member<S>> {
        self.members.iter_mut().filter(|member| member.online)
    }
}

impl<S: Store> LocalCommittee<S> {
    /// Many transfers at once, as a pipelining client sends them: every online member
    /// votes on all orders with one group commit, the client builds each certificate,
    /// and every member applies the certificates with one batch verification and one
    /// group commit. Returns the certificate of each order that reached a quorum.
    pub fn transfer_batch(&mut self, orders: &[SignedOrder]) -> Vec<Option<Certificate>> {
        let mut builders: Vec<CertificateBuilder> =
            orders.iter().map(|o| CertificateBuilder::new(self.committee.clone(), o.order.clone())).collect();
        let mut certificates = vec![None; orders.len()];
        for member in self.online_members() {
            for ((builder, vote), slot) in
                builders.iter_mut().zip(member.elder.handle_orders(orders)).zip(&mut certificates)
            {
                if let Some(certificate) = vote.ok().and_then(|v| builder.add(&v).ok().flatten()) {
                    *slot = Some(certificate);
                }
            }
        }
        let ready: Vec<Certificate> = certificates.iter().flatten().cloned().collect();
        for member in self.online_members() {
            member.elder.handle_certificates(&ready);
        }
        certificates
    }
}

/// Every ordering of `items`, for exhaustive checks over small logs.
pub fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for (index, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(index);
        for mut tail in permutations(&rest) {
            tail.insert(0, *first);
            all.push(tail);
        }
    }
    all
}
