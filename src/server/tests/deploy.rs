//! The deployment files users copy (`deploy/`), read as Kubernetes reads
//! them: every document parses; the companion's configuration in the
//! Secret loads with the companion's own code once its placeholders are
//! filled, and its listeners, files and probes agree with the Deployment,
//! the Service and the NetworkPolicy; the filter's configuration in every
//! Istio and Envoy Gateway resource passes the filter's own validation and
//! names the companion's ingress port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::path::{Path, PathBuf};

use portcullis::config::{generate_signing_key, Config};
use portcullis_e2e::pki::Ca;
use serde_json::Value;

const ANY_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace")
        .to_owned()
}

/// Every document of every YAML file in `deploy/<dir>`, as JSON values.
fn documents(dir: &str) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy").join(dir))
        .expect("deploy/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML in deploy/{dir}");
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
            assert!(
                value["kind"].is_string(),
                "{name}: a document without a kind"
            );
            out.push((name.clone(), value));
        }
    }
    out
}

fn of_kind<'a>(docs: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(_, d)| d)
        .collect()
}

fn one<'a>(docs: &'a [(String, Value)], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

#[test]
fn the_kubernetes_manifests_agree_with_the_companions_configuration() {
    let docs = documents("kubernetes");
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Job",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "PodDisruptionBudget",
    ] {
        assert!(!of_kind(&docs, kind).is_empty(), "no {kind}");
    }
    let secret = one(&docs, "Secret");
    let toml = secret["stringData"]["portcullis.toml"]
        .as_str()
        .expect("portcullis.toml");

    // Filled as the header says, with the files the mounts would hold.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tls")).unwrap();
    std::fs::create_dir_all(dir.path().join("gateway-ca")).unwrap();
    let tls_dir = dir.path().join("tls");
    let ca = Ca::new(&tls_dir, "ca");
    ca.issue_server("tls", "portcullis.portcullis.svc.cluster.local");
    Ca::new(&dir.path().join("gateway-ca"), "ca");
    let filled = toml
        .replace(
            "{{BOOTSTRAP_TOKEN}}",
            "gt-AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBA",
        )
        .replace("{{DATABASE_PASSWORD}}", "secret")
        .replace("{{SESSION_KEY}}", ANY_KEY)
        .replace("{{ENCRYPTION_KEY}}", ANY_KEY)
        .replace(
            "{{SIGNING_KEY_PEM}}",
            generate_signing_key().unwrap().trim_end(),
        )
        .replace("/etc/portcullis/", &format!("{}/", dir.path().display()));
    assert!(
        !filled.contains("{{"),
        "a placeholder the test does not know:\n{filled}"
    );
    let config = Config::from_toml(&filled, dir.path())
        .unwrap_or_else(|e| panic!("the manifest's portcullis.toml: {e}"));
    let tls = config
        .ingress_tls
        .as_ref()
        .expect("TLS on the ingress listener");
    assert!(tls.client_auth, "only the gateways' certificates get in");
    assert!(matches!(
        config.storage,
        portcullis::config::StorageConfig::Distributed(_)
    ));

    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let ports: Vec<(String, u64)> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("http".to_owned(), u64::from(config.listen.port())),
            (
                "ingress".to_owned(),
                u64::from(config.ingress_listen.port())
            )
        ]
    );
    // The probes ask the plain-HTTP public listener (the kubelet has no
    // client certificate for the ingress one), at a path it serves.
    for (probe, path) in [
        ("startupProbe", "/health"),
        ("livenessProbe", "/health"),
        ("readinessProbe", "/ready"),
    ] {
        assert_eq!(container[probe]["httpGet"]["port"], "http", "{probe}");
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
    }
    // The image's user, and nothing writable but /tmp.
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    // The files the configuration names are where the volumes put them.
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    for path in [
        "/etc/portcullis/portcullis.toml",
        "/etc/portcullis/tls",
        "/etc/portcullis/gateway-ca",
    ] {
        assert!(mounts.contains(&path), "{path} not mounted: {mounts:?}");
    }
    assert!(toml.contains("certificate = \"/etc/portcullis/tls/tls.crt\""));
    assert!(toml.contains("client_ca = \"/etc/portcullis/gateway-ca/ca.crt\""));
    // The Secrets mounted readable by the pod's group, never by others
    // (the companion warns about a configuration any user can read).
    for volume in pod["volumes"].as_array().unwrap() {
        if let Some(mode) = volume["secret"]["defaultMode"].as_u64() {
            assert_eq!(mode & 0o007, 0, "{volume}");
        } else {
            assert!(
                volume["secret"].is_null(),
                "{volume}: a Secret with the default 0644"
            );
        }
    }
    assert_eq!(pod["securityContext"]["fsGroup"], 65532);
    let env = container["env"].as_array().unwrap();
    assert!(env.iter().any(
        |e| e["name"] == "PORTCULLIS_CONFIG" && e["value"] == "/etc/portcullis/portcullis.toml"
    ));
    // Several replicas, on a store they can share, migrated by the Job.
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2);
    assert!(toml.contains("migrate_on_start = false"));
    let job = one(&docs, "Job");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["args"][0],
        "migrate"
    );

    // The Service exposes both listeners by the container's port names.
    let service = one(&docs, "Service");
    let targets: Vec<(&str, u64)> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["targetPort"].as_str().unwrap(),
                p["port"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(targets, [("http", 8300), ("ingress", 8303)]);

    // The NetworkPolicy lets only the gateways reach the ingress port.
    let policy = one(&docs, "NetworkPolicy");
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    let ingress_rule = rules
        .iter()
        .find(|r| r["ports"][0]["port"] == u64::from(config.ingress_listen.port()))
        .expect("a rule for the ingress port");
    assert!(
        ingress_rule["from"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "the ingress port must be limited to the gateways"
    );
    for rule in rules.iter().filter(|r| r["from"].is_null()) {
        assert_ne!(
            rule["ports"][0]["port"],
            u64::from(config.ingress_listen.port()),
            "the ingress port open to all"
        );
    }
    let budget = one(&docs, "PodDisruptionBudget");
    assert_eq!(
        budget["spec"]["selector"], deployment["spec"]["selector"],
        "the budget covers the Deployment's pods"
    );
}

/// The filter's configuration in each resource, with the key filled.
fn filter_configs() -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    for (file, doc) in documents("istio")
        .into_iter()
        .chain(documents("envoy-gateway"))
    {
        let configs: Vec<Value> = match doc["kind"].as_str().unwrap() {
            "WasmPlugin" => vec![doc["spec"]["pluginConfig"].clone()],
            "TrafficExtension" => vec![doc["spec"]["wasm"]["pluginConfig"].clone()],
            "EnvoyExtensionPolicy" => doc["spec"]["wasm"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["config"].clone())
                .collect(),
            _ => continue,
        };
        for config in configs {
            out.push((file.clone(), doc.clone(), config));
        }
    }
    out
}

#[test]
fn every_filter_configuration_in_istio_and_gateway_resources_passes_the_filters_validation() {
    let configs = filter_configs();
    let kinds: Vec<&str> = configs
        .iter()
        .map(|(_, d, _)| d["kind"].as_str().unwrap())
        .collect();
    for kind in ["WasmPlugin", "TrafficExtension", "EnvoyExtensionPolicy"] {
        assert!(kinds.contains(&kind), "no {kind} in deploy/");
    }
    for (file, doc, config) in &configs {
        let json = config.to_string().replace("{{SESSION_KEY}}", ANY_KEY);
        portcullis_filter::config::FilterConfig::from_json(json.as_bytes())
            .unwrap_or_else(|e| panic!("{file}: the filter refuses its configuration: {e}"));
        let cluster = config["cluster"].as_str().unwrap();
        match doc["kind"].as_str().unwrap() {
            "WasmPlugin" | "TrafficExtension" => {
                // Istio's name for the Service port of the ingress listener.
                assert_eq!(
                    cluster,
                    "outbound|8303||portcullis.portcullis.svc.cluster.local"
                );
                let spec = &doc["spec"];
                let wasm = if doc["kind"] == "WasmPlugin" {
                    spec
                } else {
                    &spec["wasm"]
                };
                assert_eq!(spec["phase"], "AUTHN", "{file}");
                assert_eq!(wasm["failStrategy"], "FAIL_CLOSE", "{file}");
                assert!(
                    wasm["url"].as_str().unwrap().starts_with("oci://"),
                    "{file}"
                );
                assert!(wasm["sha256"].is_string(), "{file}: pin the image's digest");
            }
            _ => {
                let wasm = &doc["spec"]["wasm"][0];
                assert_eq!(wasm["failOpen"], false, "{file}");
                assert!(wasm["code"]["image"]["sha256"].is_string(), "{file}");
                assert_eq!(cluster, "portcullis");
            }
        }
    }
    // A configuration the filter refuses is refused here too: the check
    // is not a rubber stamp.
    assert!(portcullis_filter::config::FilterConfig::from_json(
        br#"{"cluster": "c", "polcy": {}}"#
    )
    .is_err());
}
