//! The admin API, black-box: one binary, one module per concern.

mod api_keys;
mod auth;
mod auth_hostile;
mod authorization;
mod consistency;
mod console;
mod groups;
mod jsonapi;
mod openapi;
mod ops;
mod plans;
mod proxy;
mod proxy_hostile;
mod routes;
mod secrets;
mod upstreams;
mod usage_log;
mod usage_rollups;
mod users;
mod webhook_delivery;
mod webhooks;
