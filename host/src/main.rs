//! The `sonde` binary: parses the command line and runs it.

fn main() -> std::process::ExitCode {
    sonde::cli::main()
}
