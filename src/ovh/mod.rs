//! `dynhostd ovh`: the DynHost panel steps (a login, a record, a password) done over the OVH
//! API, with the address the agent would publish.
//!
//! - [`config`]: the `[ovh_api]` section.
//! - [`sign`]: the request signature.
//! - [`api`]: the signed client and its errors.
//! - [`provision`]: auth, provision, list, rotate and remove, as calls and file writes.
//! - [`cli`]: the subcommands and what they print.
//!
//! Nothing here runs in `run`: the agent's idle behaviour is unchanged.

//!
//! Only [`config`] is always built (a config with `[ovh_api]` is read and checked everywhere);
//! the commands themselves come with the `ovh-api` feature (default on; the static router
//! builds leave it out, Cargo.toml says why).

#[cfg(feature = "ovh-api")]
pub mod api;
#[cfg(feature = "ovh-api")]
pub mod cli;
pub mod config;
#[cfg(feature = "ovh-api")]
pub mod provision;
#[cfg(feature = "ovh-api")]
pub mod sign;
