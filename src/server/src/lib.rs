//! The Portcullis companion. Layers, each knowing only the one below:
//! `storage` (one store per trait, no HTTP), `services` (the token rules),
//! `handlers` (parse a request, call one service, shape the reply).
//! `clock` is time as a value, for both. `app` wires them from `config`; `cli` is the binary's front door.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod handlers;
pub mod metrics;
pub mod model;
pub mod private_file;
pub mod random;
pub mod serve;
pub mod services;
pub mod storage;
