//! `/api/routes`.
