//! Envoy configurations for the bench's rows and the ext_authz tests: one
//! listener whose only route answers itself (`direct_response`, so that
//! the proxy is the only cost) or goes to an upstream, behind the HTTP
//! filters a row compares. Written as JSON, which Envoy reads as YAML.

use serde_json::{json, Value};

/// What the listener's one route does after the filters.
pub enum Answer {
    /// `200 ok` from Envoy itself.
    Direct,
    /// To the `upstream` cluster on this port.
    Upstream(u16),
}

/// The whole configuration: `filters` (before the router) on a listener at
/// `proxy`, the admin at `admin`, and the companion's cluster `portcullis`
/// at `companion` (its ingress listener), if any.
pub fn envoy_config(
    admin: u16,
    proxy: u16,
    answer: Answer,
    filters: Vec<Value>,
    companion: Option<u16>,
) -> String {
    let (route, upstream) = match answer {
        Answer::Direct => (
            json!({"direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}),
            None,
        ),
        Answer::Upstream(port) => (json!({"route": {"cluster": "upstream"}}), Some(port)),
    };
    let mut route = route;
    route["match"] = json!({"prefix": "/"});
    let mut http_filters = filters;
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));
    let clusters: Vec<Value> = [("portcullis", companion), ("upstream", upstream)]
        .into_iter()
        .filter_map(|(name, port)| port.map(|port| cluster(name, port)))
        .collect();
    json!({
        "admin": {"address": address(admin)},
        "static_resources": {
            "listeners": [{
                "name": "bench",
                "address": address(proxy),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "bench",
                        "route_config": {"virtual_hosts": [{
                            "name": "bench",
                            "domains": ["*"],
                            "routes": [route]
                        }]},
                        "http_filters": http_filters
                    }
                }]}]
            }],
            "clusters": clusters
        }
    })
    .to_string()
}

/// A proxy-wasm filter from `wasm` (a path) with `configuration` (the
/// plugin's JSON), in a VM of its own named `name`.
pub fn wasm_filter(name: &str, wasm: &str, configuration: &Value) -> Value {
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": name,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": configuration.to_string()
                },
                "vm_config": {
                    "vm_id": name,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm}}
                }
            }
        }
    })
}

/// Envoy's own `ext_authz` asking the companion's `/ingress/ext-authz`
/// (cluster `portcullis`) whether the request's token meets `check` (the
/// query `/ingress/auth` takes, as `scope=read:all`), preceded by the
/// removal of client-sent identity headers: `ext_authz` only sets the
/// headers the companion answers with, so without it a client could send
/// the others itself.
pub fn ext_authz_filters(check: &str) -> Vec<Value> {
    vec![
        json!({
            "name": "envoy.filters.http.header_mutation",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": {"request_mutations": [{
                    "remove_on_match": {"key_matcher": {"prefix": "x-auth-request-"}}
                }]}
            }
        }),
        json!({
            "name": "envoy.filters.http.ext_authz",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
                // Envoy sends the check only these of the client's headers
                // (Authorization among them always): the cookie too, for
                // the session cookie.
                "allowed_headers": {"patterns": [{"exact": "cookie"}]},
                "http_service": {
                    "server_uri": {"uri": "http://portcullis", "cluster": "portcullis", "timeout": "1s"},
                    "path_prefix": "/ingress/ext-authz",
                    "authorization_request": {
                        "headers_to_add": [{"key": "x-portcullis-check", "value": check}]
                    },
                    "authorization_response": {
                        "allowed_upstream_headers": {"patterns": [{"prefix": "x-auth-request-"}, {"exact": "cookie"}]},
                        "allowed_client_headers": {"patterns": [{"exact": "www-authenticate"}]}
                    }
                }
            }
        }),
    ]
}

/// Envoy's own `jwt_authn` requiring an RS256 JWT from `issuer` for
/// audience `bench`, verified against `jwks` (a JWKS document), with its
/// subject as the user header and the token itself not forwarded.
pub fn jwt_authn_filter(issuer: &str, jwks: &str) -> Value {
    json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": {
                "issuer": issuer,
                "audiences": ["bench"],
                "local_jwks": {"inline_string": jwks},
                "forward": false,
                "claim_to_headers": [{"header_name": "x-auth-request-user", "claim_name": "sub"}]
            }},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]
        }
    })
}

fn address(port: u16) -> Value {
    json!({"socket_address": {"address": "127.0.0.1", "port_value": port}})
}

fn cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address(port)}}]}]
        }
    })
}
