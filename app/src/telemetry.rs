//! Log output: text or JSON lines on standard error, filtered by `TOLLGATE_LOG_LEVEL` (or
//! `RUST_LOG`). Each request adds one line with target `tollgate::access` (see
//! `tollgate_adapters::http::access_log` and the proxy's metering).

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

pub fn init(format: &str, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
