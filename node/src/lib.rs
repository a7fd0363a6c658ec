//! The Acre node daemon (to come): the I/O shell around `acre-ledger` and `acre-proofs`.
//!
//! It will own libp2p networking between elders, section membership agreed through a
//! BFT engine, the chunk store and challenge scheduler, the axum JSON API and metrics,
//! and the `acre-node` binary (`init`, `run`, `devnet`). Protocol decisions stay in the
//! ledger's state machines; the node only moves bytes, time and disk writes in and out.
