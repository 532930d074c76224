//! Style checks are tests: the architecture invariants of ARCHITECTURE.md that a grep can hold.

use std::path::Path;
use std::path::PathBuf;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Code lines (comments dropped).
fn code(path: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

fn offenders(files: &[PathBuf], needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files {
        for (line, text) in code(file) {
            if needles.iter().any(|n| text.contains(n)) {
                found.push(format!("{}:{line}: {}", file.display(), text.trim()));
            }
        }
    }
    found
}

/// Goal: the ledger does no IO: no async runtime, clock, randomness, sled, tonic or prost in
/// `ledger-core`'s sources.
#[test]
fn ledger_core_does_no_io() {
    let files = rust_files(&root().join("node/core/src"));
    let found = offenders(
        &files,
        &[
            "SystemTime::now",
            "Instant::now",
            "tokio",
            "sled::",
            "tonic",
            "prost",
            "rand::",
            "std::fs",
            "std::net",
            "async fn",
        ],
    );
    assert!(found.is_empty(), "IO in the pure ledger:\n{}", found.join("\n"));
}

/// Goal: only `node::store` imports sled.
#[test]
fn only_store_imports_sled() {
    let store = root().join("node/src/store");
    let files: Vec<PathBuf> = ["node/src", "client/src", "cluster/src", "chaos/src"]
        .iter()
        .flat_map(|d| rust_files(&root().join(d)))
        .filter(|f| !f.starts_with(&store))
        .collect();
    let found = offenders(&files, &["sled::", "use sled"]);
    assert!(found.is_empty(), "sled outside node::store:\n{}", found.join("\n"));
}

/// Goal: prost types stop at the API, the Raft network and the DR shipper: the store, the
/// Raft glue's state and the security layer never see them.
#[test]
fn prost_types_stop_at_the_edges() {
    let node = root().join("node/src");
    let allowed = ["api", "raft/network.rs", "dr", "runtime.rs"];
    let files: Vec<PathBuf> =
        rust_files(&node).into_iter().filter(|f| !allowed.iter().any(|a| f.starts_with(node.join(a)))).collect();
    let found = offenders(&files, &["ledger_proto", "prost::"]);
    assert!(found.is_empty(), "protobuf types inside the node:\n{}", found.join("\n"));
}

/// Goal: every source file says what it owns in a `//!` module comment.
#[test]
fn every_module_has_a_doc_comment() {
    let mut missing = Vec::new();
    for dir in ["node/core/src", "node/src", "client/src", "cluster/src", "chaos/src", "proto/src", "tests/src"] {
        for file in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            if !text.trim_start().starts_with("//!") {
                missing.push(file.display().to_string());
            }
        }
    }
    assert!(missing.is_empty(), "files without a //! module comment:\n{}", missing.join("\n"));
}
