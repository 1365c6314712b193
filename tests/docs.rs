//! The docs cannot drift from the code: every flag is in the README, every key of the JSON
//! summary is in its table, and `scenarios/README.md` has every key the loader accepts (the
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

/// The README's text.
fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

#[test]
fn every_flag_is_documented() {
    use clap::CommandFactory;
    let command = swarmer::cli::Cli::command();
    let flags: Vec<&str> = command.get_arguments().filter_map(|a| a.get_long()).filter(|l| *l != "help").collect();
    assert!(flags.len() > 40 && flags.contains(&"metrics-port"), "{flags:?}");
    let page = readme();
    let missing: Vec<&&str> = flags
        .iter()
        .filter(|flag| !page.contains(&format!("`--{flag}")) && !page.contains(&format!(", --{flag}")))
        .collect();
    assert!(missing.is_empty(), "flags missing from README.md: {missing:?}");
}

#[test]
fn every_summary_key_is_documented() {
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/report/json.rs")).unwrap();
    // The fields of the summary's structs (everything after `pub struct SummaryFile`).
    let schema = &source[source.find("pub struct SummaryFile").expect("the summary's struct")..];
    let mut keys = Vec::new();
    let mut inside = false;
    for line in schema.lines().map(str::trim) {
        if line.starts_with("pub struct ") {
            inside = true;
        } else if line == "}" {
            inside = false;
        } else if let Some(field) = line.strip_prefix("pub ").filter(|_| inside) {
            keys.push(field.split(':').next().unwrap().to_string());
        }
    }
    assert!(keys.len() > 60 && keys.contains(&"p99_99".to_string()), "{keys:?}");
    let page = readme();
    let missing: Vec<&String> =
        keys.iter().filter(|k| !page.contains(&format!("`{k}`")) && !page.contains(&format!("`{k}[]`"))).collect();
    assert!(missing.is_empty(), "summary keys missing from README.md: {missing:?}");
}
