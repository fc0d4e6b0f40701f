//! `stg-docgen`: the man pages and shell completions of the five stg tools, generated from
//! their clap definitions, so `--help`, the man pages and the completions never disagree
//! (the way coreutils' `uudoc` and xh's `generation.rs` do it).
//!
//! It is a build helper, not a tool: `make install` and `contrib/stg.spec` run it and
//! install what it writes. It does not write the prose pages in `docs/`, which are kept by
//! hand. Layout under `--out DIR`:
//!
//! ```text
//! man/man1/stg-hosts.1              one page per tool, one per subcommand (stg-hosts-apply.1)
//! completions/bash/stg-hosts        bash-completion's completions/ directory
//! completions/zsh/_stg-hosts        zsh's site-functions/ (or Debian's vendor-completions/)
//! completions/fish/stg-hosts.fish   fish's vendor_completions.d/
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{CommandFactory, Parser};
use clap_complete::Shell;

/// Exit statuses for errors (see [`stg_core::exit`]).
pub const EXIT_CODES: stg_core::exit::Codes = stg_core::exit::Codes::STANDARD;

/// The shells completions are written for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Write the stg tools' man pages and shell completions (bash, zsh, fish) into a directory.
#[derive(Parser, Debug)]
#[command(name = "stg-docgen", version)]
pub struct Cli {
    /// Directory to write `man/man1/*.1` and `completions/{bash,zsh,fish}/*` into (created
    /// if missing; existing files are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// The clap command of every tool, in pipeline order, exactly as the binaries parse it.
#[must_use]
pub fn commands() -> Vec<clap::Command> {
    vec![
        stg_dump::Cli::command(),
        stg_restore::Cli::command(),
        stg_hosts::Cli::command(),
        stg_probe::Cli::command(),
        stg_age::Cli::command(),
    ]
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("while creating {}", dir.display()))?;
    }
    let file = File::create(path).with_context(|| format!("while creating {}", path.display()))?;
    Ok(BufWriter::new(file))
}

fn render_page(cmd: clap::Command, dir: &Path) -> anyhow::Result<PathBuf> {
    let man = clap_mangen::Man::new(cmd).manual("stg");
    let path = dir.join(man.get_filename());
    let mut out = create(&path)?;
    man.render(&mut out)
        .and_then(|()| out.write_all(see_also(&path).as_bytes()))
        .and_then(|()| out.flush())
        .with_context(|| format!("while writing {}", path.display()))?;
    Ok(path)
}

/// The names of the five tools, in pipeline order.
pub const TOOLS: [&str; 5] = [
    "stg-dump",
    "stg-restore",
    "stg-hosts",
    "stg-probe",
    "stg-age",
];

/// A roff SEE ALSO section naming the other tools and the prose documentation, which clap
/// knows nothing about.
fn see_also(page: &Path) -> String {
    let this = page
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let refs: Vec<String> = TOOLS
        .iter()
        .filter(|t| **t != this)
        .map(|t| format!(".BR {t} (1)"))
        .collect();
    format!(
        ".SH \"SEE ALSO\"\n{},\n.BR hosts (5).\n.PP\nThe longer pages (each tool, the inventory, stream and masking \
         formats) are in /usr/share/doc/stg, or docs/ in the source tree.\n",
        refs.join(",\n")
    )
}

/// Writes `NAME.1` for the tool and `NAME-SUB.1` for each of its visible subcommands into
/// `dir`; returns the paths written.
pub fn write_man_pages(cmd: &clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut cmd = cmd.clone().disable_help_subcommand(true);
    // Building sets each subcommand's display name ("stg-hosts-apply", the page's name) and
    // bin name ("stg-hosts apply", shown in its synopsis).
    cmd.build();
    let mut written = vec![render_page(cmd.clone(), dir)?];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        written.push(render_page(sub.clone(), dir)?);
    }
    Ok(written)
}

/// Writes the completion script of one tool for one shell into `dir`, named as that
/// shell's completion directory expects (`stg-x`, `_stg-x`, `stg-x.fish`); returns its path.
pub fn write_completion(cmd: &clap::Command, shell: Shell, dir: &Path) -> anyhow::Result<PathBuf> {
    let name = cmd.get_name().to_owned();
    let file = match shell {
        Shell::Zsh => format!("_{name}"),
        Shell::Fish => format!("{name}.fish"),
        _ => name.clone(),
    };
    let path = dir.join(file);
    let mut out = create(&path)?;
    clap_complete::generate(shell, &mut cmd.clone(), &name, &mut out);
    out.flush()
        .with_context(|| format!("while writing {}", path.display()))?;
    Ok(path)
}

/// Writes every man page and completion script under `out`; returns the paths written.
pub fn generate(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for cmd in commands() {
        written.extend(write_man_pages(&cmd, &out.join("man/man1"))?);
        for shell in SHELLS {
            let dir = out.join("completions").join(shell.to_string());
            written.push(write_completion(&cmd, shell, &dir)?);
        }
    }
    Ok(written)
}

/// Generates everything into `--out` and lists the files written on stdout.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let Cli { out } = cli;
    let written = generate(&out)?;
    let mut stdout = std::io::BufWriter::new(stg_core::output::stdout());
    for path in written {
        writeln!(stdout, "{}", path.display())?;
    }
    stdout.flush()?;
    Ok(stg_core::exit::OK)
}
