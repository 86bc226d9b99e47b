//! `/api/webhooks`.
