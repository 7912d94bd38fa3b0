//! Integration tests of a whole node: a real server on an ephemeral port
//! with a temporary data directory, driven over real HTTP. One module per
//! feature; shared setup in `common`.

mod common;

mod actions;
mod activations;
mod alarms;
mod attacks;
mod auth;
mod catalog;
mod chain_plans;
mod chain_sessions;
mod chains;
mod code_attacks;
mod confidential;
mod confidential_javascript;
mod confidential_packages;
mod contract;
mod default_parameters;
mod enclave_pool;
mod forked_broker;
mod freshness;
mod info;
mod invoke;
mod javascript;
mod listener;
mod misbehaving;
mod owners;
mod packages;
mod postgres;
mod remote_broker;
mod restart;
mod sequences;
mod throttles;
mod tls;
mod triggers;
mod web;
