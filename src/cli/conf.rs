//! Flags from a config file and the environment, as Locust's `locust.conf` and `LOCUST_*`: a
//! file of long flag names (`--config FILE`, or `./swarmer.conf` when present) and `SWARMER_*`
//! variables (`SWARMER_USERS=100`, `SWARMER_RUN_TIME=5m`). The command line wins, then the
//! environment, then the file, then the scenario file, then the defaults.
//!
//! The file's syntax is configargparse's, which Locust reads: one `key = value` (or
//! `key: value`) per line, the key a long flag without its dashes (`run-time` or `run_time`),
//! `true`/`false` for switches, `[a, b]` for a flag given several times, `#` and `;` comments,
//! `[section]` lines ignored. Every entry is checked against the flag's own parser before the
//! run: an unknown key or a bad value names the file, the line and the key (exit 2).
//!
//! The settings become flags placed before the command line's: only those the command line
//! does not give, so clap sees each flag once and its checks (conflicts, requirements) apply
//! to the whole as to a typed command line. Subcommands (`target`, `demo`, `compare`) read
//! neither file nor variables.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, CommandFactory};

use super::Cli;

/// The file read when present and no `--config` names one.
pub const DEFAULT_FILE: &str = "swarmer.conf";
/// The prefix of the variables that set flags.
pub const ENV_PREFIX: &str = "SWARMER_";

/// Flags the settings gave, and where each came from.
#[derive(Debug, Default)]
pub struct Settings {
    /// The command line to parse: the program, the settings' flags, then the typed arguments.
    pub argv: Vec<OsString>,
    /// Where each added flag came from (`swarmer.conf:3`, `SWARMER_USERS`), for messages.
    pub sources: Vec<String>,
    /// Variables with the prefix that name no flag but come close to one.
    pub warnings: Vec<String>,
}

/// One setting: where it was written, its flag, its values.
#[derive(Clone, Debug)]
struct Entry {
    origin: String,
    id: String,
    values: Vec<String>,
}

/// The command line with the settings of the config file and the environment added. `cwd` is
/// where `swarmer.conf` is looked for. Errors name the file and line (or the variable) and key.
pub fn with_settings(
    argv: Vec<OsString>,
    env: impl IntoIterator<Item = (String, String)>,
    cwd: &Path,
) -> Result<Settings, String> {
    let command = Cli::command().ignore_errors(true);
    let Ok(matches) = command.clone().try_get_matches_from(&argv) else {
        // The command line itself is wrong: parsing it again says how.
        return Ok(Settings { argv, ..Settings::default() });
    };
    if matches.subcommand().is_some() {
        return Ok(Settings { argv, ..Settings::default() });
    }
    let env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    let explicit = matches
        .get_one::<PathBuf>("config")
        .cloned()
        .or_else(|| env.iter().find(|(k, _)| k == "SWARMER_CONFIG").map(|(_, v)| PathBuf::from(v)));
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let file = match explicit {
        Some(path) => {
            Some((std::fs::read_to_string(&path).map_err(|e| format!("--config {}: {e}", path.display()))?, path))
        }
        None => std::fs::read_to_string(cwd.join(DEFAULT_FILE)).ok().map(|text| (text, PathBuf::from(DEFAULT_FILE))),
    };
    if let Some((text, path)) = file {
        for entry in parse_file(&text, &path.display().to_string(), &command)? {
            entries.insert(entry.id.clone(), entry);
        }
    }
    let mut warnings = Vec::new();
    for (name, value) in &env {
        match env_entry(name, value, &command)? {
            Variable::Setting(entry) => {
                entries.insert(entry.id.clone(), entry);
            }
            Variable::Warn(warning) => warnings.push(warning),
            Variable::Skip => {}
        }
    }
    let (added, sources) = as_flags(&entries, &matches, &command);
    let mut out = Vec::with_capacity(argv.len() + added.len());
    let mut typed = argv.into_iter();
    out.extend(typed.next());
    out.extend(added);
    out.extend(typed);
    Ok(Settings { argv: out, sources, warnings })
}

/// The settings the command line did not give, as flags (`--users 10`, a switch when true),
/// and where each came from.
fn as_flags(
    entries: &BTreeMap<String, Entry>,
    matches: &clap::ArgMatches,
    command: &clap::Command,
) -> (Vec<OsString>, Vec<String>) {
    let mut added = Vec::new();
    let mut sources = Vec::new();
    for entry in entries.values() {
        if matches.value_source(&entry.id) == Some(ValueSource::CommandLine) {
            continue;
        }
        let arg = command.get_arguments().find(|a| a.get_id() == entry.id.as_str()).expect("entries name flags");
        let flag = format!("--{}", arg.get_long().expect("settings name long flags"));
        if is_switch(arg) {
            if entry.values[0] == "true" {
                added.push(OsString::from(&flag));
                sources.push(format!("{flag} from {}", entry.origin));
            }
            continue;
        }
        for value in &entry.values {
            added.extend([OsString::from(&flag), OsString::from(value)]);
        }
        sources.push(format!("{flag} from {}", entry.origin));
    }
    (added, sources)
}

/// The entries of a config file, each checked.
fn parse_file(text: &str, path: &str, command: &clap::Command) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') || line.starts_with('[') {
            continue;
        }
        let origin = format!("{path}:{}", number + 1);
        let (key, value) = match line.find(['=', ':']) {
            Some(at) => (line[..at].trim(), Some(line[at + 1..].trim())),
            None => (line, None),
        };
        let value = value.map(strip_comment).map(unquote);
        let entry = entry(&origin, key, value.as_deref(), command).map_err(|e| format!("{origin}: {e}"))?;
        entries.push(entry);
    }
    Ok(entries)
}

/// What a `SWARMER_*` variable is.
enum Variable {
    Setting(Entry),
    /// The config file's own variable, or a name far from every flag (a scenario's own
    /// variable, say).
    Skip,
    /// A name close to a flag's: a typo, most likely.
    Warn(String),
}

/// A `SWARMER_*` variable as a setting; a bad value is an error naming the variable.
fn env_entry(name: &str, value: &str, command: &clap::Command) -> Result<Variable, String> {
    if name == "SWARMER_CONFIG" {
        return Ok(Variable::Skip);
    }
    let key = name[ENV_PREFIX.len()..].to_ascii_lowercase().replace('_', "-");
    if find(command, &key).is_none() {
        let near = command.get_arguments().filter_map(|a| a.get_long()).find(|long| distance(long, &key) <= 2);
        return Ok(near.map_or(Variable::Skip, |long| {
            let suggestion = format!("{ENV_PREFIX}{}", long.to_ascii_uppercase().replace('-', "_"));
            Variable::Warn(format!("{name} is not a flag's variable (did you mean {suggestion}?); ignored"))
        }));
    }
    Ok(Variable::Setting(entry(name, &key, Some(value.trim()), command).map_err(|e| format!("{name}: {e}"))?))
}

/// A key and its value checked against the flag's parser.
fn entry(origin: &str, key: &str, value: Option<&str>, command: &clap::Command) -> Result<Entry, String> {
    let normalized = key.trim_start_matches('-').replace('_', "-");
    let Some(arg) = find(command, &normalized) else {
        return Err(format!("{key}: no such flag (keys are long flag names, e.g. users, run-time, headless)"));
    };
    let long = arg.get_long().unwrap_or_default();
    if matches!(long, "config" | "help" | "version") {
        return Err(format!("{key}: not a setting (give it on the command line)"));
    }
    let id = arg.get_id().to_string();
    if is_switch(arg) {
        let on = match value.unwrap_or("true").to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => "true",
            "false" | "no" | "off" | "0" => "false",
            other => return Err(format!("{key} = {other}: expected true or false")),
        };
        return Ok(Entry { origin: origin.into(), id, values: vec![on.into()] });
    }
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Err(format!("{key}: needs a value ({key} = …)"));
    };
    let values = match (value.strip_prefix('[').and_then(|v| v.strip_suffix(']')), arg.get_value_delimiter()) {
        (Some(list), Some(delimiter)) => {
            vec![list.split(',').map(|v| unquote(v.trim())).collect::<Vec<_>>().join(&delimiter.to_string())]
        }
        (Some(list), None) if matches!(arg.get_action(), ArgAction::Append) => {
            list.split(',').map(|v| unquote(v.trim())).filter(|v| !v.is_empty()).collect()
        }
        _ => vec![value.to_string()],
    };
    for value in &values {
        check_value(command, arg, value).map_err(|e| format!("{key} = {value}: {e}"))?;
    }
    Ok(Entry { origin: origin.into(), id, values })
}

/// The flag a key names: its long name or an alias.
fn find<'a>(command: &'a clap::Command, key: &str) -> Option<&'a Arg> {
    command
        .get_arguments()
        .filter(|a| !a.is_positional())
        .find(|a| a.get_long() == Some(key) || a.get_all_aliases().is_some_and(|aliases| aliases.contains(&key)))
}

fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue)
}

/// Runs the flag's own parser on `value` alone.
fn check_value(command: &clap::Command, arg: &Arg, value: &str) -> Result<(), String> {
    let flag = format!("--{}", arg.get_long().unwrap_or_default());
    let attempt = command.clone().ignore_errors(false).try_get_matches_from(["swarmer", flag.as_str(), value]);
    match attempt {
        Err(err)
            if matches!(err.kind(), clap::error::ErrorKind::InvalidValue | clap::error::ErrorKind::ValueValidation) =>
        {
            let text = err.render().to_string();
            let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
            // clap's "invalid value 'x' for '--flag <FLAG>': why" → "why".
            Err(first.rsplit_once("': ").map_or(first, |(_, why)| why).to_string())
        }
        _ => Ok(()),
    }
}

/// A value without a trailing ` # comment` or ` ; comment`.
fn strip_comment(value: &str) -> &str {
    let cut = [" #", "\t#", " ;", "\t;"].iter().filter_map(|m| value.find(m)).min();
    cut.map_or(value, |at| &value[..at]).trim()
}

/// A value without surrounding quotes.
fn unquote(value: &str) -> String {
    let quoted = value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"')) || (value.starts_with('\'') && value.ends_with('\'')));
    match quoted {
        true => value[1..value.len() - 1].to_string(),
        false => value.to_string(),
    }
}

/// Edit distance (insertions, deletions, substitutions) between two short names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn settings(file: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Result<Settings, String> {
        let dir = std::env::temp_dir().join(format!("swarmer-conf-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(text) = file {
            std::fs::write(dir.join(DEFAULT_FILE), text).unwrap();
        }
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let out = with_settings(argv(args), env, &dir);
        std::fs::remove_dir_all(&dir).unwrap();
        out
    }

    fn parsed(s: &Settings) -> Cli {
        use clap::Parser;
        Cli::try_parse_from(&s.argv).unwrap()
    }

    #[test]
    fn command_line_beats_environment_beats_file() {
        let file = "# a comment\n[swarmer]\nusers = 10\nrun-time: 5m  # inline\nspawn_rate = 2\nheadless = true\n";
        let s = settings(
            Some(file),
            &[("SWARMER_USERS", "20"), ("SWARMER_SPAWN_RATE", "4")],
            &["swarmer", "-r", "8", "http://127.0.0.1:1/"],
        )
        .unwrap();
        let cli = parsed(&s);
        assert_eq!(cli.run.users, Some(20), "the environment beats the file");
        assert_eq!(cli.run.spawn_rate, Some(8.0), "the command line beats both");
        assert_eq!(cli.run.run_time, Some(std::time::Duration::from_secs(300)));
        assert!(cli.run.headless);
        assert_eq!(cli.run.url.as_deref(), Some("http://127.0.0.1:1/"));
        assert!(s.sources.iter().any(|x| x == "--run-time from swarmer.conf:4"), "{:?}", s.sources);
    }

    #[test]
    fn lists_switches_and_aliases() {
        let file = "tags = [a, b]\nthreshold = [p99<250ms, 'fail_ratio<1%']\nheadless = false\nlocustfile = x.toml\n";
        let cli = parsed(&settings(Some(file), &[], &["swarmer"]).unwrap());
        assert_eq!(cli.run.tags, vec!["a", "b"]);
        assert_eq!(cli.run.threshold, vec!["p99<250ms", "fail_ratio<1%"]);
        assert!(!cli.run.headless);
        assert_eq!(cli.run.scenario, Some(PathBuf::from("x.toml")));
    }

    #[test]
    fn bad_entries_name_file_line_and_key() {
        let err = settings(Some("users = 5\nusres = 4\n"), &[], &["swarmer"]).unwrap_err();
        assert!(err.starts_with("swarmer.conf:2: usres: no such flag"), "{err}");
        let err = settings(Some("\nusers = many\n"), &[], &["swarmer"]).unwrap_err();
        assert!(err.starts_with("swarmer.conf:2: users = many: "), "{err}");
        let err = settings(Some("headless = maybe\n"), &[], &["swarmer"]).unwrap_err();
        assert!(err.contains("expected true or false"), "{err}");
        let err = settings(None, &[("SWARMER_RUN_TIME", "soon")], &["swarmer"]).unwrap_err();
        assert!(err.contains("SWARMER_RUN_TIME") && err.contains("run-time = soon"), "{err}");
    }

    #[test]
    fn unknown_variables_warn_only_near_a_flag() {
        let s = settings(None, &[("SWARMER_USRES", "4"), ("SWARMER_TEST_ORIGIN", "x")], &["swarmer"]).unwrap();
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("did you mean SWARMER_USERS"), "{:?}", s.warnings);
    }

    #[test]
    fn subcommands_read_no_settings() {
        let s = settings(Some("users = x\n"), &[], &["swarmer", "target", "--port", "0"]).unwrap();
        assert_eq!(s.argv, argv(&["swarmer", "target", "--port", "0"]));
    }

    #[test]
    fn distances() {
        assert_eq!(distance("users", "usres"), 2);
        assert_eq!(distance("users", "users"), 0);
        assert_eq!(distance("run-time", "runtime"), 1);
    }
}
