//! `/api/upstreams`.
