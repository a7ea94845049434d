//! The HTTPS side of a DynHost update (filled in by the provider work).
