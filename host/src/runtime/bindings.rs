//! The one place WIT bindings are generated. The rest of the host uses the
//! re-exports below and never touches raw bindgen output.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::baton::api::{auth, config, jobs, kv, log, secrets, types};
