//! The on-disk cache of precompiled components: compiling a component takes
//! from a fraction of a second (Rust) to seconds (Python, JS); loading the
//! precompiled artifact takes milliseconds. Entries are keyed by the SHA-256
//! of the component and of the engine's compatibility hash (wasmtime version,
//! target, compiler settings), written atomically, and a stale or corrupt
//! entry is recompiled rather than trusted.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A folder of `.cwasm` files owned by this user.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ComponentCache { dir: dir.into() }
    }

    /// `$SONDE_CACHE_DIR`, else `$XDG_CACHE_HOME/sonde/components`, else `~/.cache/sonde/components`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("SONDE_CACHE_DIR") {
            return Some(PathBuf::from(d));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
        Some(base.join("sonde").join("components"))
    }

    /// The file an artifact for these bytes lives in.
    pub fn path_for(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let mut sha = Sha256::new();
        sha.update(bytes);
        sha.update(engine_hash.finish().to_le_bytes());
        self.dir
            .join(format!("{}.cwasm", hex::encode(sha.finalize())))
    }

    /// Loads the precompiled component if present and valid, else compiles and stores it.
    /// Returns the component and whether it came from the cache.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.path_for(engine, bytes);
        if path.exists() {
            // SAFETY: the cache folder is this user's own; entries are written
            // only by `store` below, from `Engine::precompile_component`, and
            // wasmtime checks the header and engine compatibility on load.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable cache entry");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let artifact = engine.precompile_component(bytes)?;
        if let Err(e) = self.store(&path, &artifact) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the component cache");
        }
        // SAFETY: `artifact` was produced by this engine a moment ago.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        Ok((component, false))
    }

    fn store(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut tmp, artifact)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}
