//! The scenario loader: any text compiles or gives an error at a line:col inside the text, with
//! no panic. Sandboxed: no DNS lookups, no files read.
#![no_main]

use std::path::Path;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use swarmer::config::Plan;
use swarmer::scenario::{compile_str, Overrides};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let overrides = Overrides { sandbox: true, ..Overrides::default() };
    let base = Plan::empty(vec![None], Duration::from_secs(1));
    if let Err(err) = compile_str(text, Path::new("fuzz.toml"), &overrides, base) {
        let lines = text.split('\n').count();
        assert!(err.line >= 1 && err.line <= lines, "line {} of {lines}: {err}", err.line);
        assert!(err.col >= 1, "col {}: {err}", err.col);
        assert!(!err.message.is_empty());
    }
});
