//! wxlogin: the login backend of a WeChat mini-program, and the console its admins use.

pub mod auth;
pub mod cli;
pub mod config;
pub mod cpu_share;
pub mod db;
pub mod domain;
pub mod error;
pub mod i18n;
pub mod passwords;
pub mod ratelimit;
pub mod routes;
pub mod startup;
pub mod telemetry;
pub mod wechat;
