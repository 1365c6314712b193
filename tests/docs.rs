//! `scenarios/README.md` cannot drift from the loader: every key a scenario file may use (the
//! fields of the `*Def` structs and the variants of the `*Def` enums in `src/scenario/file.rs`,
//! under their serde names) must appear in the page as `` `key` ``.

use std::path::Path;

/// (type, key) for every key the loader accepts, read from its source.
fn loader_keys() -> Vec<(String, String)> {
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scenario/file.rs")).unwrap();
    let mut keys = Vec::new();
    let mut current: Option<(String, bool)> = None; // (type name, is enum)
    let mut rename: Option<String> = None;
    // `#[serde(untagged)]` enums are value shapes (a number or a list), not keys.
    let mut untagged = false;
    for line in source.lines() {
        let line = line.trim();
        if current.is_none() && line == "#[serde(untagged)]" {
            untagged = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub struct ").or_else(|| line.strip_prefix("pub enum ")) {
            let name = rest.split_whitespace().next().unwrap().to_string();
            current = (name.ends_with("Def") && !untagged).then(|| (name, line.starts_with("pub enum")));
            untagged = false;
            continue;
        }
        let Some((type_name, is_enum)) = &current else { continue };
        if line == "}" {
            current = None;
            continue;
        }
        if let Some(attr) = line.strip_prefix("#[serde(") {
            if let Some(value) = attr.split("rename = \"").nth(1) {
                rename = Some(value.split('"').next().unwrap().to_string());
            }
            continue;
        }
        if line.starts_with("//") || line.starts_with("#[") || line.is_empty() {
            continue;
        }
        let key = if *is_enum {
            // `Variant(…),` in snake_case, as serde's rename_all writes it.
            let variant = line.split(['(', ',', ' ', '{']).next().unwrap();
            if variant.is_empty() || !variant.chars().next().unwrap().is_uppercase() {
                continue;
            }
            let mut snake = String::new();
            for (i, c) in variant.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            snake
        } else {
            match line.strip_prefix("pub ").and_then(|l| l.split(':').next()) {
                Some(field) => field.trim().to_string(),
                None => continue,
            }
        };
        let key = rename.take().unwrap_or(key);
        keys.push((type_name.clone(), key));
    }
    keys
}

#[test]
fn every_scenario_key_is_documented() {
    let keys = loader_keys();
    // The reader itself must have found the structures (a broken reader must not pass).
    for expected in
        ["user", "task", "wait_time", "between", "poisson", "not_multiple_of", "body_file", "interrupt_weight"]
    {
        assert!(keys.iter().any(|(_, k)| k == expected), "loader key {expected} not found by the reader: {keys:?}");
    }
    assert!(keys.len() > 60, "only {} keys read", keys.len());
    let page = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/README.md")).unwrap();
    let missing: Vec<String> = keys
        .iter()
        .filter(|(_, key)| {
            // As a key in a table (`wait_time` forms are written `{ between = … }`).
            !page.contains(&format!("`{key}`")) && !page.contains(&format!("`{{ {key} = "))
        })
        .map(|(type_name, key)| format!("{type_name}.{key}"))
        .collect();
    assert!(missing.is_empty(), "keys missing from scenarios/README.md: {missing:?}");
}
