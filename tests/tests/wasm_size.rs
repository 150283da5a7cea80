//! The release `.wasm` stays small: Envoy loads one copy per worker.

use portcullis_e2e::artifacts::MAX_WASM_BYTES;
use portcullis_e2e::Artifacts;

#[test]
fn the_release_wasm_is_under_500_kb() {
    let size = std::fs::metadata(Artifacts::get().wasm)
        .expect("the built .wasm")
        .len();
    assert!(
        size < MAX_WASM_BYTES,
        "portcullis_filter.wasm is {size} bytes"
    );
}
