//! The dependency rule of ARCHITECTURE.md ("The workflow core and its doors"): the workflow core
//! never imports the web layer. Nothing under `provision/`, `console/`, `images/`, `store/`,
//! `domain/`, nor `pool.rs`, `metrics.rs`, `drivers.rs`, `netboot.rs`, `work.rs`,
//! `inventory.rs` and `config/` may name `crate::app`, `crate::api` or `crate::ui`, in a `use`
//! or in a path. The doors (`app.rs`, `api/`, `ui/`, `cli/`, `main.rs`) may import the core.

use std::path::{Path, PathBuf};

/// The core's files and folders, relative to `host/src`.
const CORE: &[&str] =
    &["provision", "console", "images", "store", "domain", "pool.rs", "metrics.rs", "drivers.rs", "netboot.rs", "work.rs", "inventory.rs", "config"];

/// The web layer's modules, as the core would name them.
const DOORS: &[&str] = &["app", "api", "ui"];

/// Each line of `source` that names a door, as `(line number, line)`. Comments are skipped;
/// `use crate::{api, ...}` groups are read as well as plain paths.
fn violations(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_group = false;
    for (i, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("").trim();
        if code.is_empty() {
            continue;
        }
        let starts_group = code.contains("crate::{");
        let names_door = DOORS.iter().any(|door| {
            let path = format!("crate::{door}");
            let named_as_path = code.match_indices(&path).any(|(at, _)| {
                let next = code[at + path.len()..].chars().next();
                !matches!(next, Some(c) if c.is_alphanumeric() || c == '_')
            });
            let named_in_group = (in_group || starts_group) && words(code).any(|w| w == *door);
            named_as_path || named_in_group
        });
        if names_door {
            found.push((i + 1, line.to_owned()));
        }
        if starts_group {
            in_group = true;
        }
        if in_group && code.contains("};") {
            in_group = false;
        }
    }
    found
}

/// The identifiers of a line of code, for names inside an import group.
fn words(code: &str) -> impl Iterator<Item = &str> {
    let group = code.split("crate::{").last().unwrap_or(code);
    group.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty())
}

fn rust_files(at: &Path, out: &mut Vec<PathBuf>) {
    if at.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(at).expect("read dir").map(|e| e.expect("dir entry").path()).collect();
        entries.sort();
        for entry in entries {
            rust_files(&entry, out);
        }
    } else if at.extension().is_some_and(|e| e == "rs") {
        out.push(at.to_owned());
    }
}

#[test]
fn the_workflow_core_never_imports_the_web_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for part in CORE {
        rust_files(&src.join(part), &mut files);
    }
    assert!(files.len() > 30, "the core's files were not found under {}: {files:?}", src.display());
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        for (line, code) in violations(&text) {
            broken.push(format!("{}:{line}: {}", file.strip_prefix(&src).unwrap_or(file).display(), code.trim()));
        }
    }
    assert!(broken.is_empty(), "the workflow core imports the web layer (ARCHITECTURE.md, dependency rule):\n{}", broken.join("\n"));
}

#[test]
fn the_rule_sees_every_way_of_naming_a_door() {
    let caught = [
        "use crate::app::AppState;",
        "fn f(s: &crate::app::AppState) {}",
        "    crate::api::replicate_images(&state).await;",
        "use crate::{api, store};",
        "use crate::{\n    domain::NodeId,\n    ui::Sessions,\n};",
        "use crate::ui;",
    ];
    for source in caught {
        assert!(!violations(source).is_empty(), "not caught: {source}");
    }
    let allowed = [
        "use crate::provision::WorkflowCore;",
        "// crate::api::error maps this",
        "use crate::{store, domain::NodeId};",
        "let apis = crate::apis_count();",
        "use crate::images::Images;",
    ];
    for source in allowed {
        assert!(violations(source).is_empty(), "wrongly caught: {source}: {:?}", violations(source));
    }
}
