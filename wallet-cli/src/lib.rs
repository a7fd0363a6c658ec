//! The `acre` wallet: encrypted keys, and balances, history and transfers through any
//! node's JSON API.

pub mod client;
pub mod keystore;
