//! A small router: method + path pattern → function.
//!
//! Patterns are matched segment by segment: `{name}` captures one segment,
//! `{*rest}` (last only) captures the remainder. A trailing slash is ignored.
//! A path that matches with another method gives 405 with `Allow`; no match
//! gives 404. Both replies can be replaced to fit an API's error shape.

use crate::http::{Request, Response, percent_decode};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

type RouteFn = Box<dyn Fn(&Request) -> Response>;
type ReplyFn = Box<dyn Fn(&Request, &[&str]) -> Response>;

/// Routes requests to functions by method and path pattern.
pub struct Router {
    routes: Vec<Route>,
    not_found: ReplyFn,
    method_not_allowed: ReplyFn,
}

struct Route {
    method: String,
    pattern: String,
    segments: Vec<Segment>,
    f: RouteFn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    /// An empty router whose 404/405 replies are `{"error": "..."}`.
    ///
    /// ```
    /// use baton_sdk::{Request, Router};
    /// assert_eq!(Router::new().handle(Request::new("GET", "/x")).status, 404);
    /// ```
    pub fn new() -> Self {
        Router {
            routes: Vec::new(),
            not_found: Box::new(|req, _| {
                Response::error(404, &format!("no route for {} {}", req.method, req.path))
            }),
            method_not_allowed: Box::new(|req, allowed| {
                Response::error(
                    405,
                    &format!(
                        "method {} is not allowed on {}; allowed: {}",
                        req.method,
                        req.path,
                        allowed.join(", ")
                    ),
                )
            }),
        }
    }

    /// Adds a route for `method` (e.g. `"PUT"`) and `pattern`.
    ///
    /// ```
    /// use baton_sdk::{Request, Response, Router};
    /// let r = Router::new().route("PATCH", "/nodes/{name}", |_| Response::new(204));
    /// assert_eq!(r.handle(Request::new("PATCH", "/nodes/web-1")).status, 204);
    /// ```
    pub fn route<R: Into<Response>>(
        mut self,
        method: &str,
        pattern: &str,
        f: impl Fn(&Request) -> R + 'static,
    ) -> Self {
        self.routes.push(Route {
            method: method.to_ascii_uppercase(),
            pattern: pattern.to_string(),
            segments: parse_pattern(pattern),
            f: Box::new(move |req| f(req).into()),
        });
        self
    }

    /// Adds a `GET` route.
    ///
    /// ```
    /// use baton_sdk::{Request, Response, Router};
    /// let r = Router::new().get("/files/{*rest}", |req| Response::text(200, req.param("rest").unwrap_or("")));
    /// assert_eq!(r.handle(Request::new("GET", "/files/a/b.txt")).body, b"a/b.txt");
    /// ```
    pub fn get<R: Into<Response>>(
        self,
        pattern: &str,
        f: impl Fn(&Request) -> R + 'static,
    ) -> Self {
        self.route("GET", pattern, f)
    }

    /// Adds a `POST` route.
    ///
    /// ```
    /// use baton_sdk::{Request, Response, Router};
    /// let r = Router::new().post("/command/deploy", |_| Response::new(202));
    /// assert_eq!(r.handle(Request::new("POST", "/command/deploy")).status, 202);
    /// // Another method on a known path is a 405 with `Allow`.
    /// let resp = r.handle(Request::new("GET", "/command/deploy"));
    /// assert_eq!(resp.status, 405);
    /// assert_eq!(resp.header("allow"), Some("POST"));
    /// ```
    pub fn post<R: Into<Response>>(
        self,
        pattern: &str,
        f: impl Fn(&Request) -> R + 'static,
    ) -> Self {
        self.route("POST", pattern, f)
    }

    /// Adds a `PUT` route.
    ///
    /// ```
    /// use baton_sdk::{Request, Response, Router};
    /// let r = Router::new().put("/nodes/{name}", |req| Response::text(201, req.param("name").unwrap()));
    /// assert_eq!(r.handle(Request::new("PUT", "/nodes/db-1")).body, b"db-1");
    /// ```
    pub fn put<R: Into<Response>>(
        self,
        pattern: &str,
        f: impl Fn(&Request) -> R + 'static,
    ) -> Self {
        self.route("PUT", pattern, f)
    }

    /// Adds a `DELETE` route.
    ///
    /// ```
    /// use baton_sdk::{Request, Response, Router};
    /// let r = Router::new().delete("/nodes/{name}", |_| Response::new(204));
    /// assert_eq!(r.handle(Request::new("DELETE", "/nodes/db-1")).status, 204);
    /// ```
    pub fn delete<R: Into<Response>>(
        self,
        pattern: &str,
        f: impl Fn(&Request) -> R + 'static,
    ) -> Self {
        self.route("DELETE", pattern, f)
    }

    /// Replaces the 404 reply.
    ///
    /// ```
    /// use baton_sdk::{Request, Response, Router};
    /// let r = Router::new().not_found(|req| Response::error(404, &format!("no {}", req.path)));
    /// assert_eq!(r.handle(Request::new("GET", "/x")).body_json()["error"], "no /x");
    /// ```
    pub fn not_found(mut self, f: impl Fn(&Request) -> Response + 'static) -> Self {
        self.not_found = Box::new(move |req, _| f(req));
        self
    }

    /// Replaces the 405 reply; `f` receives the allowed methods.
    /// An `Allow` header is added to whatever it returns.
    ///
    /// ```
    /// use baton_sdk::{Request, Response, Router};
    /// let r = Router::new()
    ///     .get("/jobs", |_| Response::new(200))
    ///     .method_not_allowed(|req, allowed| Response::error(405, &format!("{} not in {allowed:?}", req.method)));
    /// let resp = r.handle(Request::new("DELETE", "/jobs"));
    /// assert_eq!(resp.status, 405);
    /// assert_eq!(resp.header("allow"), Some("GET"));
    /// ```
    pub fn method_not_allowed(
        mut self,
        f: impl Fn(&Request, &[&str]) -> Response + 'static,
    ) -> Self {
        self.method_not_allowed = Box::new(f);
        self
    }

    /// The routes added so far as `(method, pattern)`, in the order added,
    /// with patterns as written (`{*rest}` for a rest capture). An OpenAPI
    /// document can be checked against them ([`crate::openapi::covers`]).
    ///
    /// ```
    /// use baton_sdk::{Response, Router};
    /// let r = Router::new().get("/jobs/{name}", |_| Response::new(200));
    /// assert_eq!(r.routes(), vec![("GET".to_string(), "/jobs/{name}".to_string())]);
    /// ```
    pub fn routes(&self) -> Vec<(String, String)> {
        self.routes
            .iter()
            .map(|route| (route.method.clone(), route.pattern.clone()))
            .collect()
    }

    /// Routes `req` with the router `build` returns, building it once per
    /// instance. With a fresh instance per request (the default) this is the
    /// same as `build().handle(req)`; with warm instances
    /// (`[handler.warm_instances]`) later requests skip building the routes.
    ///
    /// ```
    /// use baton_sdk::{Request, Response, Router};
    /// fn router() -> Router {
    ///     Router::new().get("/ping", |_| Response::text(200, "pong"))
    /// }
    /// let first = Router::serve(router, Request::new("GET", "/ping"));
    /// let second = Router::serve(router, Request::new("GET", "/ping"));
    /// assert_eq!((first.status, second.body), (200, b"pong".to_vec()));
    /// ```
    pub fn serve(build: fn() -> Router, req: Request) -> Response {
        thread_local! {
            static BUILT: RefCell<Vec<(usize, Rc<Router>)>> = const { RefCell::new(Vec::new()) };
        }
        let key = build as usize;
        let router = BUILT.with(|built| {
            let mut built = built.borrow_mut();
            match built.iter().find(|(k, _)| *k == key) {
                Some((_, r)) => r.clone(),
                None => {
                    let r = Rc::new(build());
                    built.push((key, r.clone()));
                    r
                }
            }
        });
        // The borrow has ended: a route may itself call `serve`.
        router.handle(req)
    }

    /// Routes `req` and returns the chosen function's response.
    ///
    /// ```
    /// use baton_sdk::{Request, Response, Router};
    /// let r = Router::new().get("/hello/{name}", |req| Response::text(200, req.param("name").unwrap()));
    /// assert_eq!(r.handle(Request::new("GET", "/hello/ann")).body, b"ann");
    /// ```
    pub fn handle(&self, mut req: Request) -> Response {
        let path = split_path(&req.path);
        let mut allowed: Vec<&str> = Vec::new();
        for route in &self.routes {
            let Some(params) = match_segments(&route.segments, &path) else {
                continue;
            };
            let method_matches =
                route.method == req.method || (route.method == "GET" && req.method == "HEAD");
            if method_matches {
                req.params = params;
                return (route.f)(&req);
            }
            if !allowed.contains(&route.method.as_str()) {
                allowed.push(route.method.as_str());
            }
        }
        if allowed.is_empty() {
            (self.not_found)(&req, &allowed)
        } else {
            let allow = allowed.join(", ");
            (self.method_not_allowed)(&req, &allowed).with_header("allow", &allow)
        }
    }
}

fn parse_pattern(pattern: &str) -> Vec<Segment> {
    split_path(pattern)
        .into_iter()
        .map(|s| {
            if let Some(name) = s.strip_prefix("{*").and_then(|r| r.strip_suffix('}')) {
                Segment::Rest(name.to_string())
            } else if let Some(name) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                Segment::Param(name.to_string())
            } else {
                Segment::Literal(s.to_string())
            }
        })
        .collect()
}

fn split_path(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// The route's parameters when `path` matches `pattern`. The match is
/// checked first, so routes that do not match allocate nothing.
fn match_segments(pattern: &[Segment], path: &[&str]) -> Option<BTreeMap<String, String>> {
    if !segments_match(pattern, path) {
        return None;
    }
    let mut params = BTreeMap::new();
    for (i, seg) in pattern.iter().enumerate() {
        match seg {
            Segment::Rest(name) => {
                params.insert(name.clone(), path.get(i..).unwrap_or(&[]).join("/"));
                break;
            }
            Segment::Literal(_) => {}
            // `+` stays a plus in paths.
            Segment::Param(name) => {
                params.insert(name.clone(), percent_decode(path[i], false));
            }
        }
    }
    Some(params)
}

fn segments_match(pattern: &[Segment], path: &[&str]) -> bool {
    for (i, seg) in pattern.iter().enumerate() {
        match seg {
            Segment::Rest(_) => return true,
            Segment::Literal(lit) if path.get(i) != Some(&lit.as_str()) => return false,
            Segment::Param(_) if i >= path.len() => return false,
            _ => {}
        }
    }
    pattern.len() == path.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new()
            .get("/", |_| Response::text(200, "root"))
            .get("/jobs", |_| Response::text(200, "list"))
            .post("/jobs", |_| Response::text(202, "created"))
            .get("/jobs/{name}", |r| {
                Response::text(200, &format!("job {}", r.param("name").unwrap()))
            })
            .get("/jobs/{name}/nodes", |r| {
                Response::text(200, &format!("nodes of {}", r.param("name").unwrap()))
            })
            .delete("/inventory/nodes/{name}", |r| {
                Response::text(200, &format!("deleted {}", r.param("name").unwrap()))
            })
            .get("/files/{*rest}", |r| {
                Response::text(200, r.param("rest").unwrap())
            })
    }

    fn body(r: &Response) -> String {
        String::from_utf8(r.body.clone()).unwrap()
    }

    #[test]
    fn literal_and_param_routes_match() {
        let r = router();
        assert_eq!(body(&r.handle(Request::new("GET", "/"))), "root");
        assert_eq!(body(&r.handle(Request::new("GET", "/jobs"))), "list");
        assert_eq!(body(&r.handle(Request::new("GET", "/jobs/"))), "list");
        assert_eq!(body(&r.handle(Request::new("GET", "/jobs/81"))), "job 81");
        assert_eq!(
            body(&r.handle(Request::new("GET", "/jobs/81/nodes"))),
            "nodes of 81"
        );
        assert_eq!(r.handle(Request::new("POST", "/jobs")).status, 202);
    }

    #[test]
    fn params_are_percent_decoded_but_plus_is_kept() {
        let r = router();
        let resp = r.handle(Request::new(
            "DELETE",
            "/inventory/nodes/web%201+a.example.com",
        ));
        assert_eq!(body(&resp), "deleted web 1+a.example.com");
        // Query syntax means nothing in a path segment.
        let resp = r.handle(Request::new("GET", "/jobs/a%26b=c&d"));
        assert_eq!(body(&resp), "job a&b=c&d");
        let resp = r.handle(Request::new("GET", "/jobs/bad%zz"));
        assert_eq!(body(&resp), "job bad%zz");
    }

    #[test]
    fn rest_captures_the_remainder() {
        let r = router();
        assert_eq!(
            body(&r.handle(Request::new("GET", "/files/a/b/c"))),
            "a/b/c"
        );
        assert_eq!(body(&r.handle(Request::new("GET", "/files"))), "");
    }

    #[test]
    fn unknown_path_is_404() {
        let r = router();
        let resp = r.handle(Request::new("GET", "/nope"));
        assert_eq!(resp.status, 404);
        assert!(
            resp.body_json()["error"]
                .as_str()
                .unwrap()
                .contains("/nope")
        );
        assert_eq!(
            r.handle(Request::new("GET", "/jobs/81/nodes/extra")).status,
            404
        );
    }

    #[test]
    fn known_path_with_wrong_method_is_405_with_allow() {
        let r = router();
        let resp = r.handle(Request::new("DELETE", "/jobs"));
        assert_eq!(resp.status, 405);
        assert_eq!(resp.header("allow"), Some("GET, POST"));
    }

    #[test]
    fn head_is_served_by_get_routes() {
        assert_eq!(router().handle(Request::new("HEAD", "/jobs")).status, 200);
    }

    #[test]
    fn custom_error_replies_are_used() {
        let r = Router::new()
            .get("/a", |_| Response::new(200))
            .not_found(|_| Response::json(404, &serde_json::json!({"kind": "custom/not-found"})))
            .method_not_allowed(|_, allowed| {
                Response::json(
                    405,
                    &serde_json::json!({"kind": "custom/method", "allowed": allowed}),
                )
            });
        assert_eq!(
            r.handle(Request::new("GET", "/b")).body_json()["kind"],
            "custom/not-found"
        );
        let resp = r.handle(Request::new("PUT", "/a"));
        assert_eq!(resp.body_json()["allowed"][0], "GET");
        assert_eq!(resp.header("allow"), Some("GET"));
    }

    #[test]
    fn result_routes_unwrap_either_side() {
        let r = Router::new().post("/x", |req: &Request| -> Result<Response, Response> {
            #[derive(serde::Deserialize)]
            #[allow(dead_code)]
            struct Body {
                n: u32,
            }
            let b: Body = req.json()?;
            Ok(Response::json(200, &serde_json::json!({"n": b.n})))
        });
        assert_eq!(
            r.handle(Request::new("POST", "/x").with_body(r#"{"n": 3}"#))
                .status,
            200
        );
        let bad = r.handle(Request::new("POST", "/x").with_body(r#"{"n": "3"}"#));
        assert_eq!(bad.status, 400);
        assert!(
            bad.body_json()["error"]
                .as_str()
                .unwrap()
                .contains("invalid type")
        );
    }
}
