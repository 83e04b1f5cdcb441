fn main() {
    // Only the N-API cdylib needs the Node link setup; fuzz/test builds without `node` skip it.
    if std::env::var_os("CARGO_FEATURE_NODE").is_some() {
        napi_build::setup();
    }
}
