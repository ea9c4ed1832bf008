//! Black-box tests of the HTTP API: the real server on port 0, a fresh SQLite file and a
//! fake WeChat per test.

mod concurrency;
mod console;
mod errors;
mod health;
mod helpers;
mod hostile;
mod limits;
mod login;
mod profile;
mod tokens;
