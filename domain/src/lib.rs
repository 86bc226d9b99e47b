//! Tollgate's pure core. Nothing here knows HTTP, SQL or any I/O crate: resources are described
//! declaratively ([`schema`]), validated and changed by use cases ([`service`]) that talk to the
//! outside world only through the traits in [`ports`].

pub mod account;
pub mod actor;
pub mod auth;
pub mod bootstrap;
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
pub mod webhooks;

/// The webhook delivery use cases under the path the adapters import them from; they live in
/// [`webhooks`].
pub mod delivery {
    pub use crate::webhooks::{
        RESPONSE_SNIPPET_BYTES, claim_due, deliver, fan_out, purge_log, redeliver, rotate_secret,
        send_test,
    };
}
pub use actor::{Actor, AuthMethod, Role};
pub use error::{DomainError, Member, Problem, ProblemKind};
pub use schema::{ResourceSchema, Row};
pub use timestamp::Timestamp;
