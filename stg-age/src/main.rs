//! The `stg-age` binary: all of it lives in the library; see [`stg_age`].

fn main() -> std::process::ExitCode {
    stg_core::exit::run_main("stg-age", stg_age::EXIT_CODES, stg_age::run)
}
