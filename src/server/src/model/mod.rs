//! Domain types that configuration, services, handlers and stores share,
//! each validated where it is made: holding one is proof it is well-formed.
//! They depend on nothing else in the companion.

pub mod oidc;
