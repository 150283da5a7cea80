//! Every committed corpus file, replayed through its target on stable
//! Rust: the seeds, and each crash the fuzzers found (minimized, named
//! `crash-*`), so a regression fails `cargo test` without a fuzzing
//! engine.

use std::fs;
use std::path::{Path, PathBuf};

use portcullis_fuzz::TARGETS;

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

#[test]
fn every_target_has_a_seed_corpus_and_every_corpus_a_target() {
    for (name, _) in TARGETS {
        let dir = corpus_root().join(name);
        let files = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert!(files > 0, "no seed corpus in {}", dir.display());
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fuzz_targets/{name}.rs"));
        assert!(bin.exists(), "no fuzz_targets/{name}.rs");
    }
    for entry in fs::read_dir(corpus_root()).unwrap() {
        let name = entry.unwrap().file_name();
        let name = name.to_string_lossy();
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "corpus/{name} belongs to no target"
        );
    }
}

#[test]
fn every_corpus_file_replays_without_a_failed_oracle() {
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let dir = corpus_root().join(name);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let data = fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{} fails its oracle", file.display());
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} corpus files");
}
