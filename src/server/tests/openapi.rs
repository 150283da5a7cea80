//! The OpenAPI document against the routers it describes: every route of
//! both listeners is in it, every operation in it is routed, with the same
//! methods; and it is what `/auth/openapi.json` serves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use portcullis::handlers::openapi::{document_json, DOCUMENT_PATH, INGRESS_TAG};
use portcullis::services::ManualClock;
use serde_json::Value;
use tower::ServiceExt as _;

mod common;

use common::Backend;

/// The methods probed: a route that lacks one answers 405 before any
/// handler runs, whatever the credentials.
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

fn document() -> Value {
    serde_json::to_value(document_json()).unwrap()
}

/// The paths a router holds. axum has no API that lists them; its `Debug`
/// prints each as `RouteId(n): "/path"`, which is read here (and the test
/// fails loudly if that ever changes, rather than passing on nothing).
fn routed_paths(router: &Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    // The routes, not the fallback's catch-alls that follow them.
    let (routes, _) = debug.split_once("fallback_router").unwrap();
    let mut paths = BTreeSet::new();
    let mut rest = routes;
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at..];
        let Some(open) = rest.find(": \"") else { break };
        let close = rest[open + 3..].find('"').unwrap();
        paths.insert(rest[open + 3..open + 3 + close].to_owned());
        rest = &rest[open + 3 + close..];
    }
    assert!(
        paths.contains("/health"),
        "no paths read from the router's Debug: {debug:.300}"
    );
    paths
}

/// A router's paths as the document spells them: `{*tail}` is `{tail}`,
/// and the wildcard's empty tail (its prefix, with or without `/`) is the
/// same route.
fn as_documented(paths: &BTreeSet<String>) -> BTreeSet<String> {
    let wildcards: Vec<(String, String)> = paths
        .iter()
        .filter_map(|p| {
            let (prefix, tail) = p.rsplit_once("/{*")?;
            Some((prefix.to_owned(), format!("{prefix}/{{{tail}")))
        })
        .collect();
    paths
        .iter()
        .map(|p| {
            for (prefix, documented) in &wildcards {
                if p == prefix
                    || *p == format!("{prefix}/")
                    || p.starts_with(&format!("{prefix}/{{*"))
                {
                    return documented.clone();
                }
            }
            p.clone()
        })
        .collect()
}

/// The document's paths, split by listener, with their methods.
fn documented(
    doc: &Value,
) -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let (mut public, mut ingress) = (BTreeMap::new(), BTreeMap::new());
    for (path, item) in doc["paths"].as_object().unwrap() {
        let operations = item.as_object().unwrap();
        let methods: BTreeSet<String> = operations.keys().map(|m| m.to_uppercase()).collect();
        let on_ingress = operations.values().all(|op| {
            op["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == INGRESS_TAG)
        });
        if on_ingress || BOTH_LISTENERS.contains(&path.as_str()) {
            ingress.insert(path.clone(), methods.clone());
        }
        if !on_ingress {
            public.insert(path.clone(), methods);
        }
    }
    (public, ingress)
}

/// The routes both listeners serve: the probes' (the document lists them
/// once, under the public listener's tags).
const BOTH_LISTENERS: [&str; 2] = ["/health", "/ready"];

/// `path` with each parameter filled in with something routable.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(match &rest[open + 1..close] {
            "key" => "AAAAAAAAAAAAAAAAAAAAAA",
            _ => "x",
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

async fn status(router: &Router, method: Method, path: &str) -> StatusCode {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [192, 0, 2, 7],
            5555,
        ))));
    router.clone().oneshot(request).await.unwrap().status()
}

/// The methods `router` routes at `path` (not 405).
async fn routed_methods(router: &Router, path: &str) -> BTreeSet<String> {
    let mut methods = BTreeSet::new();
    for method in METHODS {
        if status(router, method.clone(), &concrete(path)).await != StatusCode::METHOD_NOT_ALLOWED {
            methods.insert(method.to_string());
        }
    }
    methods
}

#[tokio::test]
async fn every_route_is_documented_and_every_operation_routed() {
    let Some((app, _, _store)) = common::app(Backend::Embedded, Arc::new(ManualClock::at(1))).await
    else {
        return;
    };
    let doc = document();
    let (public, ingress) = documented(&doc);
    for (name, router, documented) in [
        ("public", app.router(), &public),
        ("ingress", app.ingress_router(), &ingress),
    ] {
        let routed = as_documented(&routed_paths(&router));
        let listed: BTreeSet<String> = documented.keys().cloned().collect();
        assert_eq!(
            routed, listed,
            "the {name} listener's routes and the document's disagree"
        );
        for (path, methods) in documented {
            let probed: BTreeSet<String> = METHODS
                .iter()
                .map(Method::to_string)
                .filter(|m| methods.contains(m))
                .collect();
            assert_eq!(
                routed_methods(&router, path).await,
                probed,
                "{name} {path}: the methods routed and documented differ"
            );
        }
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_served() {
    let Some((app, _, _store)) = common::app(Backend::Embedded, Arc::new(ManualClock::at(1))).await
    else {
        return;
    };
    let request = Request::get(DOCUMENT_PATH).body(Body::empty()).unwrap();
    let (status, headers, body) = common::send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served, document());
    assert_eq!(served["openapi"], "3.1.0");
    // Every operation has an id of its own, and every response a
    // description, as the specification requires.
    let mut ids = BTreeSet::new();
    for (path, item) in served["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "{method} {path}: id {id} taken");
            for (code, response) in op["responses"].as_object().unwrap() {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {code}: no description"
                );
            }
        }
    }
    // Every token API operation is authenticated.
    for (path, item) in served["paths"].as_object().unwrap() {
        if path.starts_with("/auth/api/") {
            for (method, op) in item.as_object().unwrap() {
                // The session's own route (its CSRF token) takes the
                // cookie only; every other takes either.
                let expected = match path.as_str() {
                    "/auth/api/v1/login" => serde_json::json!([{"session": []}]),
                    _ => serde_json::json!([{"bearer": []}, {"session": []}]),
                };
                assert_eq!(op["security"], expected, "{method} {path}");
            }
        }
    }
}
