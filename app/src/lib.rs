//! Tollgate's composition root: configuration, wiring and commands.

pub mod cli;
pub mod config;
pub mod ops;
pub mod startup;
pub mod telemetry;

/// Installs the process-wide TLS crypto provider (several rustls users share the process).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
