//! The proxy's policy: route matching, key and plan gates, rate-limit and quota arithmetic,
//! and the in-memory configuration snapshot they read. No I/O beyond the store port used to
//! load a snapshot.

pub mod config;
pub mod limits;
pub mod path;
pub mod policy;
pub mod rollups;
pub mod routing;
pub mod usage;
pub mod usage_report;
