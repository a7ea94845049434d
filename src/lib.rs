//! dynhostd keeps OVH DynHost (and dyndns2) records pointing at a Linux gateway's public address.

pub mod config;
pub mod decide;
pub mod provider;
pub mod record;
pub mod secret;
pub mod state;
pub mod wan;
