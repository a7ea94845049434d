//! `dynhostd ovh`: the DynHost panel steps (a login, a record, a password) done over the OVH
//! API from the router itself, with the address the agent would publish.
//!
//! - [`config`]: the `[ovh_api]` section.
//! - [`sign`]: the request signature.
//! - [`api`]: the signed client and its errors.
//! - [`provision`]: auth, provision, list, rotate and remove, as calls and file writes.
//! - [`cli`]: the subcommands and what they print.
//!
//! Nothing here runs in `run`: the agent's idle behaviour is unchanged.

pub mod api;
pub mod cli;
pub mod config;
pub mod provision;
pub mod sign;
