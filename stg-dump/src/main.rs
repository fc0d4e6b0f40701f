//! The `stg-dump` binary: all of it lives in the library; see [`stg_dump`].

fn main() -> std::process::ExitCode {
    stg_core::exit::run_main("stg-dump", stg_dump::EXIT_CODES, stg_dump::run)
}
