//! The README's configuration reference is complete: every field of the
//! companion's `portcullis.toml` and of the filter's JSON, as the code
//! declares them (the `Raw…` types the configuration is read into, with
//! `deny_unknown_fields`), has an entry in its section. A new field without
//! one fails here.

use portcullis_e2e::Artifacts;

/// The fields of every `struct Raw…`/`enum Raw…` in `source`: each type's
/// name and its fields' names as serde reads them (`rename` honoured).
fn raw_fields(source: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = source.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        let opens = ["struct Raw", "enum Raw"]
            .iter()
            .find_map(|kw| line.find(kw).map(|at| &line[at + kw.len() - 3..]))
            .filter(|_| line.ends_with('{'));
        let Some(rest) = opens else {
            i += 1;
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let mut depth = 1;
        let mut rename: Option<String> = None;
        i += 1;
        while i < lines.len() && depth > 0 {
            let l = lines[i].trim();
            if depth == 1 || (depth == 2 && source.contains(&format!("enum {name}"))) {
                if let Some(r) = l
                    .strip_prefix("#[serde(rename = \"")
                    .and_then(|r| r.split_once('"'))
                {
                    rename = Some(r.0.to_owned());
                }
                // A variant with its fields on one line: `Embedded { path: PathBuf },`.
                if let Some((_, inline)) = l.split_once('{').filter(|_| l.contains('}')) {
                    let inline = inline.split('}').next().unwrap_or_default();
                    for part in inline.split(',') {
                        if let Some((field, _)) = part.trim().split_once(": ") {
                            out.push((name.clone(), field.to_owned()));
                        }
                    }
                }
                let l = l
                    .trim_start_matches("pub(super) ")
                    .trim_start_matches("pub ");
                if let Some((field, _)) = l.split_once(": ") {
                    if !field.is_empty()
                        && field
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    {
                        out.push((
                            name.clone(),
                            rename.take().unwrap_or_else(|| field.to_owned()),
                        ));
                    }
                }
            }
            depth += l.matches('{').count();
            depth -= l.matches('}').count();
            i += 1;
        }
    }
    out
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Artifacts::get().root.join(path)).expect(path)
}

/// The README between the heading `from` and the next `## ` heading.
fn section(readme: &str, from: &str) -> String {
    let start = readme
        .find(from)
        .unwrap_or_else(|| panic!("no {from} in README"));
    let rest = &readme[start + from.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// Whether `text` has an entry for `field` under one of the `prefixes`:
/// `` `prefix.field` ``, `` `prefix.field.<…>` ``, `"field"` (a JSON key in an
/// example), `` `field = …` `` or `` `[table]` ``.
fn documented(text: &str, prefixes: &[&str], field: &str) -> bool {
    prefixes.iter().any(|prefix| {
        let name = format!("{prefix}{field}");
        text.contains(&format!("`{name}`"))
            || text.contains(&format!("`{name}.")) // a table, or `.<id>`
            || text.contains(&format!("`{name}`,"))
            || text.contains(&format!("`{name} ="))
            || text.contains(&format!("`[{name}]`")) // a table's own row
            || text.contains(&format!("\"{field}\""))
    })
}

#[test]
fn every_companion_field_has_an_entry_in_the_readme() {
    let readme = read("README.md");
    let reference = section(&readme, "\n## Companion\n");
    let mut missing = Vec::new();
    let mut seen = 0;
    for file in [
        "src/server/src/config/mod.rs",
        "src/server/src/config/tls.rs",
        "src/server/src/config/storage.rs",
        "src/server/src/config/session.rs",
        "src/server/src/config/openid.rs",
        "src/server/src/config/encryption.rs",
    ] {
        for (ty, field) in raw_fields(&read(file)) {
            seen += 1;
            let prefixes: &[&str] = match ty.as_str() {
                "RawConfig" | "RawIngressTls" => &[""],
                "RawStorage" => &["storage."],
                "RawSession" => &["session."],
                "RawLogin" => &["login."],
                "RawProvider" => &["oidc_server."],
                "RawSigningKey" | "RawClient" => &[""],
                "RawEncryption" => &["encryption."],
                other => panic!("{file}: {other} is new: say here where the README documents it"),
            };
            if !documented(&reference, prefixes, &field) {
                missing.push(format!("{ty}.{field}"));
            }
        }
    }
    assert!(seen > 40, "only {seen} fields found: the parser lost them");
    assert!(
        missing.is_empty(),
        "README's Companion section has no entry for {missing:?}"
    );
}

#[test]
fn every_filter_field_has_an_entry_in_the_readme() {
    let readme = read("README.md");
    let reference = section(&readme, "\n## Filter configuration\n");
    let mut missing = Vec::new();
    let mut seen = 0;
    for file in [
        "src/filter/src/config.rs",
        "src/filter/src/policy.rs",
        "src/filter/src/routing.rs",
    ] {
        for (ty, field) in raw_fields(&read(file)) {
            seen += 1;
            let prefixes: &[&str] = match ty.as_str() {
                "RawConfig" | "RawCache" | "RawSessionCookie" | "RawRule" | "RawPolicy"
                | "RawMatch" => &[""],
                other => panic!("{file}: {other} is new: say here where the README documents it"),
            };
            if !documented(&reference, prefixes, &field) {
                missing.push(format!("{ty}.{field}"));
            }
        }
    }
    assert!(seen > 20, "only {seen} fields found: the parser lost them");
    assert!(
        missing.is_empty(),
        "README's Filter configuration section has no entry for {missing:?}"
    );
}

#[test]
fn the_field_parser_reads_renames_and_enum_variants() {
    let source = r#"
#[serde(deny_unknown_fields)]
struct RawThing {
    /// Doc: with a colon: here.
    plain: u64,
    #[serde(rename = "match")]
    matcher: RawMatch,
    pub(super) shared: Option<String>,
}
enum RawStore {
    Embedded { path: PathBuf },
    Distributed {
        database_url: String,
    },
}
"#;
    let fields: Vec<String> = raw_fields(source)
        .into_iter()
        .map(|(t, f)| format!("{t}.{f}"))
        .collect();
    assert_eq!(
        fields,
        [
            "RawThing.plain",
            "RawThing.match",
            "RawThing.shared",
            "RawStore.path",
            "RawStore.database_url"
        ]
    );
}
