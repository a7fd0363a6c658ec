//! Inbound requests, by protocol, to the component that owns each: ledger requests to
//! the section, chunks, audits and metering to the storage service, the section log to
//! the driver. The one place that decodes what peers send: a request that does not
//! decode is refused as a whole, and nothing else of it is looked at.

use std::sync::Arc;

use acre_core::wire::{self, Audits, Chunks, Ledger, Log, Meter, Protocol};
use acre_ledger::economics::pool_account;
use libp2p::PeerId;
use serde::Serialize;

use crate::driver::Farming;
use crate::section::Section;
use crate::storage::Storage;
use crate::transport::{refusal, InboundHandler, ProtocolId};

/// The node's inbound side: what the transport hands every request to.
#[derive(Debug, Clone)]
pub struct Router {
    section: Arc<Section>,
    storage: Arc<Storage>,
    farming: Farming,
}

impl Router {
    /// Routes to these components.
    pub fn new(section: Arc<Section>, storage: Arc<Storage>, farming: Farming) -> Self {
        Router { section, storage, farming }
    }

    async fn route(&self, peer: PeerId, protocol: ProtocolId, bytes: &[u8]) -> Result<Vec<u8>, wire::WireError> {
        match protocol {
            ProtocolId::Ledger => {
                let request = wire::decode(Ledger::NAME, bytes)?;
                reply::<Ledger>(&self.section.answer(request).await)
            }
            ProtocolId::Chunks => {
                let request = wire::decode(Chunks::NAME, bytes)?;
                reply::<Chunks>(&self.storage.answer_chunks(peer, request).await)
            }
            ProtocolId::Audits => {
                let challenge = wire::decode(Audits::NAME, bytes)?;
                reply::<Audits>(&self.storage.answer_audit(peer, challenge).await)
            }
            ProtocolId::Log => {
                let request = wire::decode(Log::NAME, bytes)?;
                let committee = self.section.committee();
                reply::<Log>(&self.farming.answer(peer, request, committee, &pool_account("")).await)
            }
            ProtocolId::Meter => {
                let request = wire::decode(Meter::NAME, bytes)?;
                reply::<Meter>(&self.storage.answer_meter(peer, request).await)
            }
        }
    }
}

fn reply<P: Protocol>(reply: &P::Reply) -> Result<Vec<u8>, wire::WireError>
where
    P::Reply: Serialize,
{
    wire::encode(P::NAME, reply)
}

impl InboundHandler for Router {
    async fn answer(&self, peer: PeerId, protocol: ProtocolId, request: Vec<u8>) -> Vec<u8> {
        match self.route(peer, protocol, &request).await {
            Ok(reply) => reply,
            Err(error) => {
                tracing::debug!(%peer, %error, "a request that does not decode was refused");
                refusal(protocol, error.to_string())
            }
        }
    }
}
