//! HTTP handlers, grouped as the URL space is.

pub mod api;
pub mod health;
