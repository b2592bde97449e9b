//! A small Registry v2 (distribution) client: manifests and blobs over HTTP(S) with Bearer
//! token and Basic auth. Synchronous (ureq): podrun pulls layers on plain threads.

pub mod auth;
mod client;

pub use client::Client;
