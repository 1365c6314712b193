//! The HAR reader and converter: any bytes convert to a scenario's text or give an error at a
//! line and column, with no panic; a conversion compiles or is refused with file:line:col.
#![no_main]

use std::path::Path;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use swarmer::config::Plan;
use swarmer::har::{convert, Options};
use swarmer::scenario::{compile_str, Overrides};

fuzz_target!(|data: &[u8]| {
    match convert(data, &Options::default()) {
        Ok(conversion) => {
            let overrides = Overrides { sandbox: true, ..Overrides::default() };
            let base = Plan::empty(vec![None], Duration::from_secs(1));
            let _ = compile_str(&conversion.text, Path::new("fuzz.toml"), &overrides, base);
        }
        // The error points into the input (serde_json counts lines from 1; an empty input is
        // line 1, column 0) and says something.
        Err(err) => {
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            assert!(err.line >= 1 && err.line <= lines, "line {} of {lines}: {}", err.line, err.message);
            assert!(!err.message.is_empty());
        }
    }
});
