//! The `acre` wallet (to come): encrypted keys, balances, transfers, files, apps and
//! farmer statements, spoken to any node's JSON API.
