//! The `swarmer` binary: parse flags, run, print the error chain, exit with Locust's codes.

use clap::Parser;

fn main() {
    let cli = swarmer::cli::Cli::parse();
    let code = match swarmer::main_with(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            swarmer::exit_code_of(&err)
        }
    };
    std::process::exit(code);
}
