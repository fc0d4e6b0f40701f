//! The `stg-hosts` binary: all of it lives in the library; see [`stg_hosts`].

fn main() -> std::process::ExitCode {
    stg_core::exit::run_main("stg-hosts", stg_hosts::EXIT_CODES, stg_hosts::run)
}
