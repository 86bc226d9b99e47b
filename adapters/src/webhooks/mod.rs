//! Outbound webhooks: Standard Webhooks signatures, the HTTP sender behind the domain's
//! [`tollgate_domain::ports::WebhookSender`] port, and the background dispatcher.

mod dispatcher;
mod sender;
pub mod signing;

pub use dispatcher::{Dispatcher, DispatcherHandle};
pub use sender::HttpWebhookSender;
