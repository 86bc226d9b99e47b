//! `/api/api-keys`.
