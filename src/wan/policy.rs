//! Which address counts.
