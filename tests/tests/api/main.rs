//! The admin API, black-box: one binary, one module per concern.

mod jsonapi;
mod plans;
