//! Adapters: they implement the domain's ports (persistence, security) and drive its use
//! cases (the HTTP admin API and the proxy).

pub mod gateway;
pub mod http;
pub mod login_throttle;
pub mod mail;
pub mod persistence;
pub mod security;
pub mod webhooks;
