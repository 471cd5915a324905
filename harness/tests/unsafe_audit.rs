//! The workspace's `unsafe` budget is one audited block: seeding wgpu's
//! `PipelineCache` from the disk store (harness/src/gpu/pipelines.rs,
//! `DriverCache::open`). The workspace lint only *denies* `unsafe_code`, so
//! that a single `#[expect(unsafe_code)]` can opt out; this test is what
//! keeps it single. A new `unsafe` anywhere in the workspace's Rust sources
//! fails here until it is argued for and added to `AUDITED`.

use std::path::{Path, PathBuf};

/// (file relative to the workspace root, number of `unsafe` uses in it).
const AUDITED: &[(&str, usize)] = &[("harness/src/gpu/pipelines.rs", 1)];

/// Directories whose `.rs` files are the workspace's own code.
const SCANNED: &[&str] = &["core", "harness", "dashboard", "fuzz/fuzz_targets"];

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Uses of the `unsafe` keyword in `source`, outside comments and string
/// literals on the same line (good enough for this codebase's style: no
/// multi-line strings mention it).
fn unsafe_uses(source: &str) -> usize {
    source
        .lines()
        .map(|line| {
            let code = line.split("//").next().unwrap_or("");
            let mut in_string = false;
            let mut cleaned = String::with_capacity(code.len());
            for c in code.chars() {
                if c == '"' {
                    in_string = !in_string;
                } else if !in_string {
                    cleaned.push(c);
                }
            }
            cleaned.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|word| *word == "unsafe").count()
        })
        .sum()
}

#[test]
fn only_the_audited_unsafe_exists() {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in SCANNED {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} Rust files under {}: wrong root?", files.len(), root.display());
    let this_file = Path::new(file!()).file_name().map(|n| n.to_owned());
    let mut found = Vec::new();
    for path in &files {
        if path.file_name().map(|n| n.to_owned()) == this_file {
            continue;
        }
        let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let uses = unsafe_uses(&source);
        if uses > 0 {
            let relative = path.strip_prefix(&root).unwrap_or(path).to_string_lossy().replace('\\', "/");
            found.push((relative, uses));
        }
    }
    found.sort();
    let expected: Vec<(String, usize)> = AUDITED.iter().map(|(f, n)| ((*f).to_string(), *n)).collect();
    assert_eq!(
        found, expected,
        "`unsafe` outside the audited list: argue for it in a SAFETY comment and add it to AUDITED, or remove it"
    );
}

#[test]
fn the_scanner_sees_keywords_not_prose() {
    assert_eq!(unsafe_uses("let x = unsafe { f() };"), 1);
    assert_eq!(unsafe_uses("pub unsafe fn f() {}"), 1);
    assert_eq!(unsafe_uses("// unsafe in a comment"), 0);
    assert_eq!(unsafe_uses("let s = \"unsafe\";"), 0);
    assert_eq!(unsafe_uses("#[expect(unsafe_code)]"), 0);
}
