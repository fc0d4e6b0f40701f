//! The `stg-docgen` binary: all of it lives in the library; see [`stg_docgen`].

fn main() -> std::process::ExitCode {
    stg_core::exit::run_main("stg-docgen", stg_docgen::EXIT_CODES, stg_docgen::run)
}
