//! dynhostd keeps OVH DynHost (and dyndns2) records pointing at a Linux gateway's public address.

pub mod agent;
pub mod config;
pub mod decide;
pub mod provider;
pub mod record;
pub mod report;
pub mod secret;
pub mod state;
pub mod wan;
