//! The other real programs a test drives (Debian's `skopeo`, `umoci`,
//! `docker-registry`, `podman`) and `./build.sh dist`'s output. `./build.sh
//! test` installs the programs and builds `dist/` first; a test run some
//! other way without them is skipped with a loud message, and under
//! `CI=true` fails, as the engine tests do.

use std::path::PathBuf;

use crate::Artifacts;

/// Whether what a test needs must be there (CI) rather than skipped.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn missing(what: &str, remedy: &str) -> Option<PathBuf> {
    assert!(!required(), "CI=true and {what} is missing: {remedy}");
    eprintln!(
        "\n!!!!!!!!!!\n!!! SKIPPED: this test needs {what};\n!!! {remedy}, or run under \
         CI=true to make this a failure\n!!!!!!!!!!\n"
    );
    None
}

/// `program` from the PATH, or `None` after the loud message naming the
/// Debian package that has it.
pub fn program(program: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .or_else(|| missing(program, &format!("install Debian's package {package}")))
}

/// `./build.sh dist`'s directory (`PORTCULLIS_DIST`, or `dist/`).
pub fn dist() -> Option<PathBuf> {
    let dir = std::env::var_os("PORTCULLIS_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| Artifacts::get().root.join("dist"));
    if dir.join("SHA256SUMS").is_file() {
        Some(dir)
    } else {
        missing(
            &format!("the release artefacts in {}", dir.display()),
            "run ./build.sh dist (./build.sh test does)",
        )
    }
}
