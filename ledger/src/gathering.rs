//! Gathering elders' votes into a certificate, as a state machine: answers in, and out
//! either a certificate, or the reason none can form once that is certain. The node asks
//! the elders and feeds the answers; every decision about them is made here.

use crate::{Certificate, CertificateBuilder, Committee, LedgerError, TransferOrder, VerifiedCertificate, Vote};

/// What one asked elder answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElderAnswer {
    /// Its vote (checked when recorded; one that does not verify counts as silence).
    Voted(Vote),
    /// Its refusal.
    Refused(LedgerError),
    /// Nothing in time.
    Silent,
}

/// Why gathering ended without a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatherError {
    /// The elders refused the order; the refusal that explains it best.
    #[error(transparent)]
    Refused(#[from] LedgerError),
    /// Too few elders answered to make a quorum.
    #[error("{votes} of the {quorum} votes needed were gathered; {silent} elders did not answer")]
    NoQuorum {
        /// Valid votes gathered.
        votes: usize,
        /// Votes needed.
        quorum: usize,
        /// Elders that did not answer (or sent a vote that did not verify).
        silent: usize,
    },
}

/// Votes on one order from a known number of asked elders.
#[derive(Debug, Clone)]
pub struct Gathering {
    builder: CertificateBuilder,
    quorum: usize,
    /// Elders asked whose answer is not recorded yet.
    waiting: usize,
    refusals: Vec<LedgerError>,
    silent: usize,
}

impl Gathering {
    /// Starts gathering votes on `order` from `asked` elders of `committee`.
    pub fn new(committee: Committee, order: TransferOrder, asked: usize) -> Self {
        let quorum = committee.quorum();
        Gathering {
            builder: CertificateBuilder::new(committee, order),
            quorum,
            waiting: asked,
            refusals: vec![],
            silent: 0,
        }
    }

    /// Records one elder's answer.
    pub fn record(&mut self, answer: ElderAnswer) {
        self.waiting = self.waiting.saturating_sub(1);
        match answer {
            ElderAnswer::Voted(vote) if self.builder.add(&vote).is_ok() => {}
            ElderAnswer::Refused(refusal) => self.refusals.push(refusal),
            ElderAnswer::Voted(_) | ElderAnswer::Silent => self.silent += 1,
        }
    }

    /// Whether a valid vote is in.
    pub fn has_vote(&self) -> bool {
        self.builder.votes() > 0
    }

    /// A refusal that settles the order's fate: another order holds its sequence.
    pub fn conflict(&self) -> Option<&LedgerError> {
        self.refusals.iter().find(|refusal| matches!(refusal, LedgerError::ConflictingOrder { .. }))
    }

    /// Whether the outcome is known: a quorum is in, or can no longer be.
    pub fn is_settled(&self) -> bool {
        let votes = self.builder.votes();
        votes >= self.quorum || votes + self.waiting < self.quorum
    }

    /// The certificate, or why there is none: a conflict first (it is final), then any
    /// other refusal, else the count of votes. Call once settled, or once every asked
    /// elder was recorded.
    pub fn finish(self) -> Result<Certificate, GatherError> {
        self.finish_verified().map(VerifiedCertificate::into_certificate)
    }

    /// [`Gathering::finish`], keeping that the votes were checked as they came, so the
    /// certificate can be applied without checking them again.
    pub fn finish_verified(self) -> Result<VerifiedCertificate, GatherError> {
        if let Some(certificate) = self.builder.verified() {
            return Ok(certificate);
        }
        let votes = self.builder.votes();
        let explanation = self.conflict().cloned().or_else(|| self.refusals.into_iter().next());
        Err(match explanation {
            Some(refusal) => GatherError::Refused(refusal),
            None => GatherError::NoQuorum { votes, quorum: self.quorum, silent: self.silent + self.waiting },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{keys, order_from};
    use crate::{AccountId, Digest};

    fn setup() -> (Vec<ed25519_dalek::SigningKey>, Committee, TransferOrder) {
        let elders = keys::<4>(40).to_vec();
        let committee = Committee::new(elders.iter().map(AccountId::of)).expect("committee");
        let [alice, bob] = keys::<2>(41);
        (elders, committee, order_from(&Digest::default(), &alice, &bob, 5, 0).order)
    }

    #[test]
    fn a_quorum_of_votes_settles_with_a_certificate() {
        let (elders, committee, order) = setup();
        let mut gathering = Gathering::new(committee, order.clone(), 4);
        gathering.record(ElderAnswer::Silent);
        for elder in &elders[..2] {
            gathering.record(ElderAnswer::Voted(Vote::sign(elder, order.digest())));
            assert!(!gathering.is_settled(), "two of three votes, one elder still to answer");
        }
        gathering.record(ElderAnswer::Voted(Vote::sign(&elders[2], order.digest())));
        assert!(gathering.is_settled());
        assert_eq!(gathering.finish().expect("certificate").votes.len(), 3);
    }

    #[test]
    fn once_a_quorum_is_out_of_reach_the_best_refusal_explains_it() {
        let (elders, committee, order) = setup();
        let mut gathering = Gathering::new(committee.clone(), order.clone(), 4);
        gathering.record(ElderAnswer::Refused(LedgerError::InsufficientBalance {
            balance: crate::Amount::ZERO,
            amount: crate::Amount::ZERO,
        }));
        let conflict = LedgerError::ConflictingOrder { voted: Digest([9; 32]) };
        gathering.record(ElderAnswer::Refused(conflict.clone()));
        assert_eq!(gathering.conflict(), Some(&conflict));
        assert!(gathering.is_settled(), "two refusals of four: three votes cannot come");
        assert_eq!(gathering.finish(), Err(GatherError::Refused(conflict)));

        let mut silent = Gathering::new(committee, order.clone(), 4);
        let forged = Vote::sign(&keys::<1>(42)[0], order.digest());
        silent.record(ElderAnswer::Voted(forged));
        silent.record(ElderAnswer::Voted(Vote::sign(&elders[0], order.digest())));
        silent.record(ElderAnswer::Silent);
        assert!(silent.is_settled());
        assert_eq!(silent.finish(), Err(GatherError::NoQuorum { votes: 1, quorum: 3, silent: 3 }));
    }
}
