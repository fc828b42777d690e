//! Version 1 of the hot-swap test endpoint.

const VERSION: &str = "v1";
include!("handler.rs");
