//! A handler built against the wave-one WIT (`wit/baton.wit`, a copy of the
//! contract at commit 53a2082): `PUT /kv/{key}` stores the body and reads
//! it back, `POST /spawn` queues a job that `run-job` answers with its
//! input, `GET /config/{key}` reads config. Nothing newer is imported.

wit_bindgen::generate!({ path: "wit", world: "handler" });

use baton::api::{config, jobs, kv};

struct Legacy;

fn reply(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

impl Guest for Legacy {
    fn handle(req: Request) -> Response {
        let path = req.path.clone();
        if let Some(key) = path.strip_prefix("/kv/") {
            if let Err(e) = kv::set("legacy", key, &req.body) {
                return reply(500, &format!("{{\"error\":\"{e:?}\"}}"));
            }
            return match kv::get("legacy", key) {
                Ok(Some(v)) => Response {
                    status: 200,
                    headers: vec![],
                    body: v,
                },
                other => reply(500, &format!("{{\"error\":\"{other:?}\"}}")),
            };
        }
        if path == "/spawn" {
            let spec = jobs::JobSpec {
                kind: "echo".into(),
                input: req.body,
                depends_on: vec![],
                timeout_ms: None,
                max_attempts: 1,
                labels: vec![],
            };
            return match jobs::spawn(&spec) {
                Ok(id) => reply(202, &format!("{{\"id\":\"{id}\"}}")),
                Err(e) => reply(500, &format!("{{\"error\":\"{e:?}\"}}")),
            };
        }
        if let Some(key) = path.strip_prefix("/config/") {
            let v = config::get(key).unwrap_or_default();
            return reply(200, &format!("{{\"value\":\"{v}\"}}"));
        }
        reply(404, "{\"error\":\"no such route\"}")
    }

    fn run_job(job: JobContext) -> Result<Vec<u8>, String> {
        Ok(job.input)
    }
}

export!(Legacy);
