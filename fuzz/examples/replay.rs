//! Replays inputs through a target on stable Rust, as the corpus test
//! does, for a crash found by `./build.sh fuzz`:
//! `cargo run --release -p portcullis-fuzz --example replay -- TARGET FILE...`
//! (with `PORTCULLIS_FUZZ_TRACE=1`, the stateful target prints each event).

use portcullis_fuzz::TARGETS;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_default();
    let Some((_, target)) = TARGETS.iter().find(|(t, _)| *t == name) else {
        let names: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
        eprintln!("usage: replay TARGET FILE...; targets: {}", names.join(" "));
        std::process::exit(2);
    };
    for file in args {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        target(&data);
        eprintln!("{file}: passed");
    }
}
