//! Acre's storage proofs (to come): chunk addressing by BLAKE3, proof-of-storage
//! challenges answered with BLAKE3 verified slices, and the sampling maths that sizes
//! them; later, confidential amounts. Pure functions, no I/O.
