//! Cross-crate tests of Acre live in `tests/`: in-process committees of elders driven
//! through the ledger's handlers, crash recovery of the RocksDB store with real
//! `SIGKILL`s, attacks on the transfer protocol, and property tests of its invariants.
//! Multi-process devnet and fault-injection tests join them with the node.
