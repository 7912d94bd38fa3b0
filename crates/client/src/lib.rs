//! The Rust client of the OpenWhisk REST API that Clemmys serves: used by the
//! `clemmys` CLI, the integration tests and the benchmark's load generator.
//!
//! - [`WskProps`] reads and writes OpenWhisk's `~/.wskprops`.
//! - [`Client`] has one typed async method per route (actions, invokes,
//!   activations, namespaces); it is cheap to clone and all clones share one
//!   pool of kept-alive HTTP/1 connections (hyper, with rustls for
//!   `https://` and scheme-less hosts, as OpenWhisk's tools treat them).
//! - [`transport`] is the HTTP plumbing on its own, and
//!   [`Client::request`] exposes it, so a confidential layer can seal
//!   parameters before an invoke and open results after without changing
//!   `Client`.
//!
//! What it trusts: the API host it is pointed at, with the API key it is
//! given (sent as HTTP Basic on every request). It sees parameters, code and
//! results exactly as the caller passes them: for confidential actions
//! those are sealed envelopes made and opened by a layer above this crate.
//!
//! ```no_run
//! # async fn demo() -> Result<(), clemmys_client::ClientError> {
//! use clemmys_client::{Client, InvokeOptions, WskProps};
//! let client = Client::from_props(&WskProps::load()?)?;
//! let invoked = client
//!     .invoke("hello", serde_json::json!({"name": "turtle"}), InvokeOptions::result())
//!     .await?;
//! println!("{} {invoked:?}", invoked.activation_id());
//! # Ok(()) }
//! ```

mod client;
pub mod confidential;
mod error;
pub mod names;
pub mod transport;
mod types;
pub mod wskprops;

pub use client::{ACTIVATION_ID_HEADER, Client, invoked_from_response};
pub use error::ClientError;
pub use names::{DEFAULT_NAMESPACE, encode_component, resolve_name, resolve_name_in};
pub use transport::{Exchange, LocalAnswer, LocalApi, Observer, RawResponse, Transport};
pub use types::{ActionDoc, ActivationFilter, ActivationSummary, ExecDoc, InvokeOptions, Invoked};
pub use wskprops::WskProps;

pub use clemmys_tls::ClientTlsOptions;

/// Re-exported HTTP types used in [`Client::request`] and [`RawResponse`].
pub use hyper::{HeaderMap, Method, StatusCode};
