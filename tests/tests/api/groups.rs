//! `/api/groups`.
