// Shared by greeter-v1 and greeter-v2, which differ only in `VERSION`:
// two versions of one endpoint for the hot-swap tests.

use baton_sdk::{Handler, Request, Response, Router};

struct Greeter;

impl Handler for Greeter {
    fn handle(req: Request) -> Response {
        Router::new()
            .get("/hello", |_| Response::json(200, &serde_json::json!({ "version": VERSION })))
            .handle(req)
    }
}

baton_sdk::export!(Greeter);
