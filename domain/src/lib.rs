//! Tollgate's pure core. Nothing here knows HTTP, SQL or any I/O crate: resources are described
//! declaratively ([`schema`]), validated and changed by use cases ([`service`]) that talk to the
//! outside world only through the traits in [`ports`].

pub mod account;
pub mod actor;
pub mod auth;
pub mod bootstrap;
pub mod delivery;
pub mod error;
pub mod events;
pub mod ids;
pub mod ports;
pub mod proxy;
pub mod query;
pub mod resources;
pub mod schema;
pub mod secrets;
pub mod service;
pub mod session_recycle;
pub mod sessions;
pub mod timestamp;

pub use actor::{Actor, AuthMethod, Role};
pub use error::{DomainError, Member, Problem, ProblemKind};
pub use schema::{ResourceSchema, Row};
pub use timestamp::Timestamp;
