//! The `stg-restore` binary: all of it lives in the library; see [`stg_restore`].

fn main() -> std::process::ExitCode {
    stg_core::exit::run_main("stg-restore", stg_restore::EXIT_CODES, stg_restore::run)
}
