//! The compiled-component cache: one artifact per (wasm sha256, engine), in the daemon's data dir.

use std::path::Path;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiles once per (wasm sha256, engine); later loads deserialize the cached artifact.
pub(crate) fn compile(engine: &Engine, cache_dir: &Path, bytes: &[u8], sha256: &str) -> wasmtime::Result<Component> {
    // The key covers the wasm and everything wasmtime says makes an artifact incompatible
    // (its version and the engine's configuration), hashed with a stable hash.
    let mut key = ShaHasher(Sha256::new());
    key.0.update(sha256.as_bytes());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut key);
    let cached = cache_dir.join(format!("{}.cwasm", hex::encode(key.0.finalize())));
    if cached.is_file() {
        // SAFETY: the cache dir is the daemon's own (inside its 0700 data dir) and wasmtime
        // rejects artifacts from another version or configuration.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &cached) };
        match loaded {
            Ok(component) => return Ok(component),
            Err(e) => tracing::warn!(path = %cached.display(), "stale component cache entry: {e}"),
        }
    }
    let component = Component::new(engine, bytes)?;
    match component.serialize() {
        Ok(artifact) => {
            let partial = cached.with_extension("part");
            if std::fs::write(&partial, artifact).and_then(|_| std::fs::rename(&partial, &cached)).is_err() {
                tracing::warn!(path = %cached.display(), "cannot write the component cache");
            }
        }
        Err(e) => tracing::warn!("cannot serialize component: {e}"),
    }
    Ok(component)
}

/// Feeds `Hash` output into sha256, so cache keys do not depend on std's unstable `DefaultHasher`.
struct ShaHasher(Sha256);

impl std::hash::Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
