//! The binary: flags (with the config file's and the environment's), run, print the error
//! chain, exit with Locust's codes.

use clap::Parser;

fn main() {
    let cwd = std::env::current_dir().unwrap_or_default();
    let env = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let settings = match swarmer::cli::conf::with_settings(std::env::args_os().collect(), env, &cwd) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(swarmer::EXIT_USAGE);
        }
    };
    for warning in &settings.warnings {
        eprintln!("warning: {warning}");
    }
    let mut cli = match swarmer::cli::Cli::try_parse_from(&settings.argv) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            if err.use_stderr() && !settings.sources.is_empty() {
                eprintln!("note: with {} (config file and environment)", settings.sources.join(", "));
            }
            std::process::exit(err.exit_code());
        }
    };
    cli.run.argv = settings.argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let code = match swarmer::main_with(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            swarmer::exit_code_of(&err)
        }
    };
    std::process::exit(code);
}
