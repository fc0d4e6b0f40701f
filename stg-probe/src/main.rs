//! The `stg-probe` binary: all of it lives in the library; see [`stg_probe`].

fn main() -> std::process::ExitCode {
    stg_core::exit::run_main("stg-probe", stg_probe::EXIT_CODES, stg_probe::run)
}
