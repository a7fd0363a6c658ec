//! The language of Acre's node API, shared by the node that speaks it and the clients that
//! read it (the `acre` wallet, tests, benchmarks): the views each endpoint answers, the
//! bodies it takes, problem documents with their closed list of codes, the route paths, and
//! the manifest a devnet writes. No networking, storage or consensus lives here, so a
//! client depends on this crate without linking any of the node.
//!
//! ```
//! use acre_api::{routes, Problem, ProblemCode};
//!
//! let refusal: Problem = serde_json::from_str(
//!     r#"{"type":"urn:acre:problem:unknown_account","title":"Not Found","status":404,
//!        "detail":"never held credits","code":"unknown_account"}"#,
//! ).expect("a problem document");
//! assert_eq!(refusal.code, ProblemCode::UnknownAccount);
//! assert_eq!(routes::account("acre1xyz"), "/v1/accounts/acre1xyz");
//! ```

pub mod apps;
pub mod devnet;
pub mod farming;
pub mod ledger;
mod problem;
pub mod routes;
pub mod storage;

pub use problem::{Problem, ProblemCode, PROBLEM};
