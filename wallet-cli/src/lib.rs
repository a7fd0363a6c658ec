//! The `acre` wallet: encrypted keys now; balances, transfers, files, apps and farmer
//! statements through a node's JSON API as the node gains them.

pub mod keystore;
