//! Every file in `tests/malformed/` is a broken scenario whose first line says what the loader
//! must answer: `# expect: LINE:COL: text in the message`. Each is refused before any traffic,
//! at that place, with that message.

use std::path::Path;

use swarmer::config::{Plan, DEFAULT_TIMEOUT};
use swarmer::scenario::{load, Overrides};

#[test]
fn each_malformed_file_is_refused_at_its_place_with_its_reason() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 25, "only {} malformed files", files.len());
    let mut wrong = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expect = text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).expect("an expect line");
        let (place, needle) = expect.split_once(": ").expect("LINE:COL: text");
        let base = Plan::empty(vec![None], DEFAULT_TIMEOUT);
        match load(file, &Overrides::default(), base) {
            Ok(_) => wrong.push(format!("{}: accepted", file.display())),
            Err(err) => {
                let err = err.to_string();
                let prefix = format!("{}:{place}: ", file.display());
                if !err.starts_with(&prefix) || !err.contains(needle) {
                    wrong.push(format!("{}\n  expected {place}: …{needle}…\n  got      {err}", file.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {} files:\n{}", wrong.len(), files.len(), wrong.join("\n"));
}
