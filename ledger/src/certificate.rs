//! Elders' votes, the committee that casts them, and certificates: an order with a quorum
//! of votes, which makes a transfer final.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{AccountId, Digest, LedgerError, SignatureBytes, TransferOrder};

/// Hash context of a committee's identity.
const COMMITTEE_CONTEXT: &str = "acre 2026 committee v1";

/// The number of elders out of `elders` whose agreement binds the section: floor(2n/3)+1
/// (3 of 4, 5 of 7). Any two such sets share more than the f = (n-1)/3 elders a section
/// tolerates as faulty, so two conflicting decisions can never both reach it. Votes,
/// epoch reports, removals and outcome signatures all count against this one number.
pub fn quorum(elders: usize) -> usize {
    elders * 2 / 3 + 1
}

/// Hash context of what an elder signs when it votes, distinct from the order's own so
/// an owner's signature can never pass as a vote.
const VOTE_CONTEXT: &str = "acre 2026 elder vote v1";

/// What an elder signs to vote for the order with `order_digest`.
pub fn vote_message(order_digest: &Digest) -> Digest {
    Digest::derive(VOTE_CONTEXT, &[order_digest.as_bytes()])
}

/// One elder's signature on an order: its promise never to vote for another order at
/// the same (account, sequence).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// Digest of the order voted for.
    pub order: Digest,
    /// The voting elder.
    pub elder: AccountId,
    /// Its signature over [`vote_message`].
    pub signature: SignatureBytes,
}

impl Vote {
    /// Signs a vote for `order`.
    pub fn sign(key: &SigningKey, order: Digest) -> Vote {
        Vote { order, elder: AccountId::of(key), signature: SignatureBytes::sign(key, &vote_message(&order)) }
    }
}

/// A certificate whose votes were checked against the committee ([`Committee::verify_all`]),
/// so the ledger's thread need not check them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCertificate(Certificate);

impl VerifiedCertificate {
    /// The certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.0
    }

    /// The certificate, owned.
    pub fn into_certificate(self) -> Certificate {
        self.0
    }
}

/// An elder's signature inside a certificate (the order digest is the certificate's).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElderSignature {
    /// The elder.
    pub elder: AccountId,
    /// Its vote signature.
    pub signature: SignatureBytes,
}

/// An order with votes from a quorum of elders: the transfer is final.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The certified order.
    pub order: TransferOrder,
    /// At least a quorum of distinct elders' votes.
    pub votes: Vec<ElderSignature>,
}

impl Certificate {
    /// The certificate's id: its order's digest.
    pub fn id(&self) -> Digest {
        self.order.digest()
    }
}

/// The elders of a section, with their decoded keys.
///
/// Any two quorums of `floor(2n/3)+1` share more than `n/3` elders, so with at most `f`
/// faulty ones they share an honest elder, who votes once per (account, sequence): two
/// conflicting certificates cannot both exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<AccountId>", into = "Vec<AccountId>")]
pub struct Committee {
    elders: BTreeMap<AccountId, VerifyingKey>,
}

/// Why a list of keys is not a committee.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitteeError {
    /// No elders at all.
    #[error("a committee needs at least one elder")]
    Empty,
    /// One key twice.
    #[error("elder {0} is listed twice")]
    Duplicate(AccountId),
    /// Not a public key.
    #[error("elder {0} is not a valid public key")]
    InvalidKey(AccountId),
}

impl TryFrom<Vec<AccountId>> for Committee {
    type Error = CommitteeError;
    fn try_from(ids: Vec<AccountId>) -> Result<Self, CommitteeError> {
        Committee::new(ids)
    }
}

impl From<Committee> for Vec<AccountId> {
    fn from(committee: Committee) -> Self {
        committee.elders.into_keys().collect()
    }
}

impl Committee {
    /// A committee of the given elders.
    pub fn new(ids: impl IntoIterator<Item = AccountId>) -> Result<Self, CommitteeError> {
        let mut elders = BTreeMap::new();
        for id in ids {
            let key = id.verifying_key().ok_or(CommitteeError::InvalidKey(id))?;
            if elders.insert(id, key).is_some() {
                return Err(CommitteeError::Duplicate(id));
            }
        }
        if elders.is_empty() {
            return Err(CommitteeError::Empty);
        }
        Ok(Committee { elders })
    }

    /// The committee's identity, a hash of its elders: one half of the network's
    /// ([`crate::network_id`]), to which orders and hidden orders' range proofs are bound.
    pub fn id(&self) -> Digest {
        let members: Vec<&[u8]> = self.elders.keys().map(|id| id.0.as_slice()).collect();
        Digest::derive(COMMITTEE_CONTEXT, &members)
    }

    /// Number of elders.
    pub fn size(&self) -> usize {
        self.elders.len()
    }

    /// Votes that make a certificate: [`quorum`] of its size.
    pub fn quorum(&self) -> usize {
        quorum(self.size())
    }

    /// Whether `id` is one of the elders.
    pub fn contains(&self, id: &AccountId) -> bool {
        self.elders.contains_key(id)
    }

    /// The elders' ids in order.
    pub fn members(&self) -> impl Iterator<Item = &AccountId> {
        self.elders.keys()
    }

    /// Checks one vote for `order`: right order, a member, a valid signature.
    pub fn verify_vote(&self, order: &Digest, vote: &Vote) -> Result<(), LedgerError> {
        let key = self.elders.get(&vote.elder).ok_or(LedgerError::UnknownVoter { elder: vote.elder })?;
        if vote.order != *order {
            return Err(LedgerError::InvalidVote { elder: vote.elder });
        }
        key.verify_strict(vote_message(order).as_bytes(), &vote.signature.to_dalek())
            .map_err(|_| LedgerError::InvalidVote { elder: vote.elder })
    }

    /// Checks a certificate: a quorum of distinct members whose signatures verify.
    pub fn verify_certificate(&self, certificate: &Certificate) -> Result<(), LedgerError> {
        self.verify_certificates(std::slice::from_ref(certificate)).pop().unwrap_or(Ok(()))
    }

    /// [`Committee::verify_certificates`], keeping each certificate that passed as a
    /// [`VerifiedCertificate`] for [`crate::DurableElder::handle_verified_certificates`].
    pub fn verify_all(&self, certificates: Vec<Certificate>) -> Vec<Result<VerifiedCertificate, LedgerError>> {
        let checks = self.verify_certificates(&certificates);
        certificates
            .into_iter()
            .zip(checks)
            .map(|(certificate, check)| check.map(|()| VerifiedCertificate(certificate)))
            .collect()
    }

    /// Checks many certificates with one ed25519 batch verification of all their votes
    /// (two to three times the speed of one-by-one); only if the batch fails are they checked
    /// one by one to say which failed and why.
    pub fn verify_certificates(&self, certificates: &[Certificate]) -> Vec<Result<(), LedgerError>> {
        let mut batch = SignatureBatch::default();
        let mut results: Vec<Result<(), LedgerError>> = certificates
            .iter()
            .map(|certificate| {
                let keys = self.voter_keys(certificate)?;
                batch.push_votes(&certificate.id(), &certificate.votes, &keys);
                Ok(())
            })
            .collect();
        if batch.verify() {
            return results;
        }
        for (certificate, result) in certificates.iter().zip(results.iter_mut()) {
            if result.is_ok() {
                *result = self.find_bad_vote(certificate);
            }
        }
        results
    }

    /// The keys of a certificate's voters, refusing outsiders, repeats and short counts.
    fn voter_keys(&self, certificate: &Certificate) -> Result<Vec<VerifyingKey>, LedgerError> {
        let mut seen = BTreeSet::new();
        let mut keys = Vec::with_capacity(certificate.votes.len());
        for vote in &certificate.votes {
            let key = self.elders.get(&vote.elder).ok_or(LedgerError::UnknownVoter { elder: vote.elder })?;
            if !seen.insert(vote.elder) {
                return Err(LedgerError::DuplicateVoter { elder: vote.elder });
            }
            keys.push(*key);
        }
        if keys.len() < self.quorum() {
            return Err(LedgerError::NotEnoughVotes { got: keys.len(), quorum: self.quorum() });
        }
        Ok(keys)
    }

    fn find_bad_vote(&self, certificate: &Certificate) -> Result<(), LedgerError> {
        let order = certificate.id();
        certificate.votes.iter().try_for_each(|signature| {
            let vote = Vote { order, elder: signature.elder, signature: signature.signature };
            self.verify_vote(&order, &vote)
        })
    }
}

/// Signatures gathered for one ed25519 batch verification: two to three times the speed
/// of checking them one by one (`elder-bench` prints both rates). A batch that fails says only that one of them is bad, so
/// its users check one by one, strictly, to say which.
#[derive(Default)]
pub(crate) struct SignatureBatch {
    messages: Vec<Digest>,
    signatures: Vec<ed25519_dalek::Signature>,
    keys: Vec<VerifyingKey>,
}

impl SignatureBatch {
    fn push_votes(&mut self, order: &Digest, votes: &[ElderSignature], keys: &[VerifyingKey]) {
        let message = vote_message(order);
        for (vote, key) in votes.iter().zip(keys) {
            self.push(message, vote.signature, *key);
        }
    }

    /// Adds `key`'s signature over `message`.
    pub(crate) fn push(&mut self, message: Digest, signature: SignatureBytes, key: VerifyingKey) {
        self.messages.push(message);
        self.signatures.push(signature.to_dalek());
        self.keys.push(key);
    }

    /// Signatures pushed.
    pub(crate) fn len(&self) -> usize {
        self.signatures.len()
    }

    /// Whether every signature pushed verifies (an empty batch does).
    pub(crate) fn verify(&self) -> bool {
        let messages: Vec<&[u8]> = self.messages.iter().map(|m| m.as_bytes().as_slice()).collect();
        ed25519_dalek::verify_batch(&messages, &self.signatures, &self.keys).is_ok()
    }
}

/// Client-side collection of votes into a certificate. Each vote is checked as it
/// arrives, so one lying elder cannot spoil the certificate.
#[derive(Debug, Clone)]
pub struct CertificateBuilder {
    committee: Committee,
    order: TransferOrder,
    digest: Digest,
    votes: BTreeMap<AccountId, ElderSignature>,
}

impl CertificateBuilder {
    /// Starts collecting votes for `order`.
    pub fn new(committee: Committee, order: TransferOrder) -> Self {
        let digest = order.digest();
        CertificateBuilder { committee, order, digest, votes: BTreeMap::new() }
    }

    /// Adds a vote. Returns the certificate once a quorum of valid votes is in; a repeated
    /// vote from the same elder changes nothing.
    pub fn add(&mut self, vote: &Vote) -> Result<Option<Certificate>, LedgerError> {
        self.committee.verify_vote(&self.digest, vote)?;
        self.votes.entry(vote.elder).or_insert(ElderSignature { elder: vote.elder, signature: vote.signature });
        Ok(self.certificate())
    }

    /// Valid votes from distinct elders so far.
    pub fn votes(&self) -> usize {
        self.votes.len()
    }

    /// The certificate, if a quorum of votes is in.
    pub fn certificate(&self) -> Option<Certificate> {
        self.verified().map(VerifiedCertificate::into_certificate)
    }

    /// The certificate as checked: every vote was checked against the committee as it
    /// was added, so it needs no second check before it is applied.
    pub fn verified(&self) -> Option<VerifiedCertificate> {
        (self.votes.len() >= self.committee.quorum()).then(|| {
            VerifiedCertificate(Certificate {
                order: self.order.clone(),
                votes: self.votes.values().copied().collect(),
            })
        })
    }
}
