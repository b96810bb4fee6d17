//! `fundwatch`: the command line. Wiring only — each subcommand lives in `src/cli/`.

mod cli;

use clap::Parser;

/// mimalloc rather than glibc malloc: evaluating a micro-batch allocates many small,
/// short-lived buffers on two or more threads at once, where glibc's arenas showed as
/// a quarter of a saturated `serve` (benches/RESULTS.md, "Inline service").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
