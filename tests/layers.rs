//! The crate's layers, read from its source: every `crate::MODULE` path in a module must be one
//! the flow allows, the engine's files must import only the files below them in its map, and
//! every file in `src/` must appear in the crate doc's map and the README's.
//!
//! The flow is cli → config → engine → http → stats → report: config is built from cli's flags,
//! the engine runs config's `Plan` through http's connections and records into stats, report
//! reads the plan and the stats. Arrows point one way: nothing imports the engine but the
//! composition root and the live controls that steer it; http and stats import only leaves;
//! report never reaches into the engine or http. Leaves (units, failure, runtime, tls, signal)
//! import nothing from the crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Module → the crate modules it may import. The composition root (`lib.rs`, `main.rs`, and
/// the parts it delegates to: `session.rs` for the web UI's runs, `commands.rs` for the
/// subcommands) may import anything.
const ALLOWED: &[(&str, &[&str])] = &[
    ("units", &[]),
    ("failure", &[]),
    ("runtime", &[]),
    ("tls", &[]),
    ("signal", &[]),
    ("log", &["units"]),
    ("http", &["failure", "tls", "runtime"]),
    ("stats", &["failure"]),
    ("cli", &["units", "runtime", "tls", "log"]),
    ("config", &["cli", "http", "units", "runtime", "tls", "failure"]),
    ("scenario", &["config", "http", "units", "tls", "failure"]),
    ("engine", &["config", "http", "stats", "runtime", "tls", "failure", "units"]),
    ("report", &["config", "stats", "failure", "units", "log"]),
    ("keys", &["engine", "config"]),
    ("target", &["runtime", "tls", "units"]),
    ("web", &["report", "units", "log", "http"]),
    ("har", &["units", "http"]),
    // Distributed runs drive the engine on workers and the reporter on the master.
    ("dist", &["cli", "config", "engine", "stats", "report", "failure", "log", "units", "signal", "tls"]),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, as (path relative to `src/`, text).
fn sources(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/");
            out.push((relative, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

fn all_sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    sources(&root().join("src"), &root().join("src"), &mut out);
    out
}

/// The top-level module a file belongs to (`engine/user.rs` → `engine`); `None` for the root.
fn module_of(path: &str) -> Option<&str> {
    let first = path.split('/').next().unwrap();
    match first {
        "lib.rs" | "main.rs" | "session.rs" | "commands.rs" | "cluster.rs" => None,
        _ => Some(first.trim_end_matches(".rs")),
    }
}

/// The crate modules `text` refers to by `crate::NAME` paths, outside comments.
fn imports(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && !found.contains(&name) {
                found.push(name);
            }
            rest = after;
        }
    }
    found
}

/// The imports of `files` that go against `ALLOWED`, as `path: imports MODULE`.
fn violations(files: &[(String, String)]) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut out = Vec::new();
    for (path, text) in files {
        let Some(module) = module_of(path) else { continue };
        let Some(may) = allowed.get(module) else {
            out.push(format!("{path}: module {module} has no entry in ALLOWED (say where it sits in the flow)"));
            continue;
        };
        for import in imports(text) {
            if import != module && !may.contains(&import.as_str()) {
                out.push(format!("{path}: imports {import}, which {module} may not (allowed: {may:?})"));
            }
        }
    }
    out
}

#[test]
fn every_import_follows_the_flow() {
    let files = all_sources();
    assert!(files.len() > 30, "only {} source files found", files.len());
    let wrong = violations(&files);
    assert!(wrong.is_empty(), "imports against the flow:\n{}", wrong.join("\n"));
}

#[test]
fn a_wrong_way_import_is_caught() {
    // The checker itself must fail on the imports it exists to refuse.
    let cases = [
        ("stats/mod.rs", "use crate::report::Table;", "stats/mod.rs: imports report"),
        ("http/conn.rs", "let plan: crate::config::Plan;", "http/conn.rs: imports config"),
        ("report/mod.rs", "use crate::engine::Run;", "report/mod.rs: imports engine"),
        ("failure.rs", "use crate::http::Conn;", "failure.rs: imports http"),
        ("unplaced/mod.rs", "use crate::report::Summary;", "module unplaced has no entry"),
    ];
    for (path, text, expected) in cases {
        let found = violations(&[(path.to_string(), text.to_string())]);
        assert!(found.iter().any(|v| v.contains(expected)), "{path} {text:?}: {found:?}");
    }
    // Comments do not count; the module's own paths do not count.
    let fine = [
        ("stats/mod.rs".to_string(), "// crate::report is downstream\nuse crate::stats::x;".to_string()),
        ("engine/user.rs".to_string(), "use crate::http::Conn;\nuse crate::config::Plan;".to_string()),
    ];
    assert_eq!(violations(&fine), Vec::<String>::new());
}

/// The engine's files in the order of its map (`engine/mod.rs`), top to bottom.
fn engine_order(map: &str) -> Vec<String> {
    map.lines()
        .filter_map(|line| line.strip_prefix("//! | `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.ends_with(".rs"))
        .map(|name| name.trim_end_matches(".rs").to_string())
        .collect()
}

/// `super::NAME` paths of one engine file.
fn siblings(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap();
        for part in code.split("super::").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && !found.contains(&name) {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn engine_files_import_only_the_files_below_them() {
    let files = all_sources();
    let map = &files.iter().find(|(p, _)| p == "engine/mod.rs").unwrap().1;
    let order = engine_order(map);
    assert!(order.len() >= 8 && order[0] == "thread", "engine map not read: {order:?}");
    let mut wrong = Vec::new();
    for (path, text) in files.iter().filter(|(p, _)| p.starts_with("engine/") && p.as_str() != "engine/mod.rs") {
        let name = path.trim_start_matches("engine/").trim_end_matches(".rs");
        let Some(position) = order.iter().position(|o| o == name) else {
            wrong.push(format!("{path} is not in the engine's map"));
            continue;
        };
        for sibling in siblings(text) {
            match order.iter().position(|o| *o == sibling) {
                Some(at) if at > position => {}
                Some(_) => wrong.push(format!("{path} imports {sibling}, which is above it in the map")),
                None => wrong.push(format!("{path} imports super::{sibling}, not an engine file of the map")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_source_file_is_in_both_maps() {
    let files = all_sources();
    let lib = &files.iter().find(|(p, _)| p == "lib.rs").unwrap().1;
    let crate_doc: String = lib.lines().filter(|l| l.starts_with("//!")).collect::<Vec<_>>().join("\n");
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut missing = Vec::new();
    for (path, _) in &files {
        if !crate_doc.contains(&format!("`{path}`")) {
            missing.push(format!("src/lib.rs crate doc: {path}"));
        }
        if !readme.contains(&format!("`src/{path}`")) {
            missing.push(format!("README.md: src/{path}"));
        }
    }
    assert!(missing.is_empty(), "files missing from the maps:\n{}", missing.join("\n"));
}
