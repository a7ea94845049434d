//! `dynhostd ovh`: the DynHost panel steps (a login, a record, a password) done over the OVH
//! API, with the address the agent would publish.
//!
//! - [`sign`]: the request signature.
//! - [`api`]: the signed client and its errors.
//! - [`provision`]: auth, provision, list, rotate and remove, as calls and file writes.
//! - [`cli`]: the subcommands and what they print.
//!
//! Nothing here runs in `run`: the agent's idle behaviour is unchanged.

//!
//! The `[ovh_api]` section is read and checked by every build, so it lives with the config file
//! (`crate::config::ovh_api`); the commands themselves come with the `ovh-api` feature (default
//! on; the static router builds leave it out, Cargo.toml says why).

#[cfg(feature = "ovh-api")]
pub mod api;
#[cfg(feature = "ovh-api")]
pub mod cli;
#[cfg(feature = "ovh-api")]
pub mod provision;
#[cfg(feature = "ovh-api")]
pub mod sign;
