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

/// Goal: prost types stop at the API, the Raft network (and the wire under it) and the DR
/// shipper: the store, the Raft glue's state and the security layer never see them.
#[test]
fn prost_types_stop_at_the_edges() {
    let node = root().join("node/src");
    let allowed = ["api", "raft/network.rs", "raft/wire.rs", "dr", "runtime.rs"];
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

/// The module path of a source file inside its crate (`raft/replica/write.rs` ->
/// `raft::replica::write`; `mod.rs`, `lib.rs` and `main.rs` name their directory).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The modules a file imports with top-level `use crate::…` / `use super::…` lines, resolved
/// to the longest known module prefix.
fn imports(src: &Path, file: &Path, modules: &[Vec<String>]) -> Vec<(Vec<String>, String)> {
    let here = module_of(src, file);
    let mut out = Vec::new();
    for (_, line) in code(file) {
        // Top level only: `use super::*` inside an inline `mod tests` is indented.
        let Some(path) = line.strip_prefix("use ").or_else(|| line.strip_prefix("pub use ")) else {
            continue;
        };
        let path = path.trim_end_matches(';');
        let mut segments: Vec<&str> = path.split("::").collect();
        let mut target: Vec<String> = match segments.first() {
            Some(&"crate") => {
                segments.remove(0);
                Vec::new()
            }
            Some(&"super") => {
                let mut base = here.clone();
                while segments.first() == Some(&"super") {
                    segments.remove(0);
                    // `super` of `a/b.rs` (module `a::b`) and of `a/b/mod.rs` (also `a::b`)
                    // is `a`.
                    base.pop();
                }
                base
            }
            _ => continue,
        };
        let mut resolved = target.clone();
        for segment in segments {
            target.push(segment.trim_matches(|c| c == '{' || c == '}').to_string());
            if modules.contains(&target) {
                resolved = target.clone();
            }
        }
        if resolved != here {
            out.push((resolved, line.trim().to_string()));
        }
    }
    out
}

/// The pairs of modules under `src` that import each other, with the `use` lines that close
/// each circle, and how many imports were read.
fn circles_in(src: &Path) -> (Vec<String>, usize) {
    // A binary's own module tree (`src/bin/<name>/main.rs` and its modules) is another crate.
    let files: Vec<PathBuf> = rust_files(src).into_iter().filter(|f| !f.starts_with(src.join("bin"))).collect();
    let modules: Vec<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges: Vec<(Vec<String>, Vec<String>, String)> = Vec::new();
    for file in &files {
        for (target, line) in imports(src, file, &modules) {
            edges.push((module_of(src, file), target, line));
        }
    }
    let mut circles = Vec::new();
    for (from, to, line) in &edges {
        if let Some((_, _, back)) = edges.iter().find(|(f, t, _)| f == to && t == from)
            && from < to
        {
            circles.push(format!("{} <-> {}\n    {line}\n    {back}", from.join("::"), to.join("::")));
        }
    }
    (circles, edges.len())
}

/// Goal (issue 9): no two modules import each other, in any crate: each dependency between
/// modules runs one way, so each module can be read (and replaced) after the ones it uses.
/// Method: every top-level `use crate::…`/`use super::…` line, resolved to its module; any
/// pair of modules that import each other fails, with the `use` lines that close the circle.
/// The checker itself is checked on a made-up crate with one circle.
#[test]
fn no_two_modules_import_each_other() {
    let fake = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(fake.path().join("raft/replica")).unwrap();
    for (file, text) in [
        ("lib.rs", "pub mod a;\npub mod raft;\n"),
        ("a.rs", "use crate::raft::replica::Replica;\n"),
        ("raft/mod.rs", "pub mod replica;\n"),
        ("raft/replica/mod.rs", "mod write;\nuse crate::a::Thing;\n"),
        ("raft/replica/write.rs", "use super::Replica;\n"),
    ] {
        std::fs::write(fake.path().join(file), text).unwrap();
    }
    let (fake_circles, _) = circles_in(fake.path());
    assert_eq!(fake_circles.len(), 1, "the checker finds the made-up circle: {fake_circles:?}");
    assert!(fake_circles[0].starts_with("a <-> raft::replica"), "{fake_circles:?}");

    let mut circles = Vec::new();
    let mut n_edges = 0;
    let crates = ["node/core/src", "node/src", "client/src", "client/src/bin/ledger", "cluster/src", "chaos/src"];
    for dir in crates.into_iter().chain(["proto/src", "tests/src"]) {
        let (found, n) = circles_in(&root().join(dir));
        circles.extend(found.into_iter().map(|c| format!("{dir}: {c}")));
        n_edges += n;
    }
    assert!(n_edges > 100, "the import scan found only {n_edges} edges: it is broken");
    assert!(circles.is_empty(), "modules that import each other:\n{}", circles.join("\n"));
}

/// Goal: docs/api.md's error table lists every stable error code the node can send, so a
/// client written from the docs can branch on each (one table: `ledger_proto::ErrorCode`).
#[test]
fn the_api_doc_lists_every_error_code() {
    let doc = std::fs::read_to_string(root().join("docs/api.md")).unwrap();
    let missing: Vec<&str> = ledger_proto::ErrorCode::ALL
        .iter()
        .map(|code| code.as_str())
        .filter(|name| !doc.contains(&format!("`{name}`")))
        .collect();
    assert!(missing.is_empty(), "error codes missing from docs/api.md: {missing:?}");
}
