//! The JSON:API v1.1 layer, written once for every resource: media types, query parameters,
//! request documents and response documents.

pub mod document;
pub mod media;
pub mod query;
pub mod render;

pub const MEDIA_TYPE: &str = "application/vnd.api+json";
