//! `uniffi-bindgen`, built from the same uniffi version as `doorstep-ffi`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
