//! `./build.sh bench`: Portcullis side by side with what an Envoy operator
//! would pick instead, in one run on one machine. The pieces are here; the
//! run itself is `src/bin/bench.rs`.

pub mod cpu;
pub mod envoy_config;
pub mod load;
pub mod report;
