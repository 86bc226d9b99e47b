//! `/api/users`.
