//! The generator in wasm32 writes the same bytes as natively: the digests pinned for the
//! native test (core/tests/synth_digest.rs), checked in headless Chromium.
#![cfg(target_arch = "wasm32")]

use adaftr_core::data::{generate, SynthConfig, World};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

include!("../../core/tests/synth_digests.in");

#[wasm_bindgen_test]
fn every_world_writes_the_native_bytes() {
    for (world, expected) in SYNTH_DIGESTS {
        let got = synth_digest(World::from_name(world).unwrap());
        assert_eq!(got, expected, "world `{world}`: digest {got:#018x} in wasm32, {expected:#018x} natively");
    }
}
