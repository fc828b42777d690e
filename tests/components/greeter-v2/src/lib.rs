//! Version 2 of the hot-swap test endpoint.

const VERSION: &str = "v2";
include!("../../greeter-v1/src/handler.rs");
