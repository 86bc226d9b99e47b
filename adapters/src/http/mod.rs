//! The HTTP adapters: the JSON:API admin API and the proxy listener.

pub mod access_log;
pub mod admin;
pub mod error;
pub mod forwarded;
pub mod jsonapi;
pub mod proxy;
pub mod request_id;

pub use error::{ApiError, ErrorCode};
