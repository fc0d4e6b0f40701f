//! Tests of stg-docgen: every tool's man page renders with groff and documents every flag
//! of its clap definition; completions for bash, zsh and fish name every subcommand and
//! flag; `make install-files` puts all of it where the distributions look (with DESTDIR);
//! bad output directories are clear errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use stg_tests::cmd::{bin_path, program, stg};

/// Runs `stg-docgen --out DIR` into a new temporary directory.
fn generate() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = stg("stg-docgen")
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("run stg-docgen");
    assert!(
        out.status.success(),
        "stg-docgen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = String::from_utf8(out.stdout)
        .expect("utf-8 paths")
        .lines()
        .map(PathBuf::from)
        .collect();
    (dir, written)
}

/// Every long flag of a command (without `--help`/`--version`, which clap adds itself).
fn long_flags(cmd: &clap::Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(clap::Arg::get_long)
        .filter(|l| !matches!(*l, "help" | "version"))
        .map(|l| format!("--{l}"))
        .collect()
}

fn subcommand_names(cmd: &clap::Command) -> Vec<String> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_owned())
        .collect()
}

fn groff_text(page: &Path) -> String {
    let Ok(out) = program("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .arg(page)
        .output()
    else {
        stg_tests::require("groff (to render man pages)", "groff-base");
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "groff -man -Tutf8 -ww {} failed or warned ({}):\n{stderr}",
        page.display(),
        out.status
    );
    // groff's utf8 device may print `\-` as a minus sign and strips nothing else we need;
    // bold/underline come as overstrikes (char, backspace, char).
    let text = String::from_utf8(out.stdout).expect("utf-8 groff output");
    let mut plain = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{8}' => {
                plain.pop();
            }
            '\u{2212}' | '\u{2010}' => plain.push('-'),
            c => plain.push(c),
        }
    }
    plain
}

#[test]
fn every_man_page_renders_with_groff_and_documents_every_flag() {
    let (dir, written) = generate();
    let man1 = dir.path().join("man/man1");
    for cmd in stg_docgen::commands() {
        let name = cmd.get_name().to_owned();
        let page = man1.join(format!("{name}.1"));
        assert!(written.contains(&page), "{} not written", page.display());
        let text = groff_text(&page);
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SEE ALSO"] {
            assert!(text.contains(section), "{name}.1 has no {section}:\n{text}");
        }
        for flag in long_flags(&cmd) {
            assert!(
                text.contains(&flag),
                "{name}.1 does not document {flag}:\n{text}"
            );
        }
        let mut built = cmd.clone().disable_help_subcommand(true);
        built.build();
        for sub in built.get_subcommands().filter(|s| !s.is_hide_set()) {
            let sub_page = man1.join(format!("{name}-{}.1", sub.get_name()));
            let sub_text = groff_text(&sub_page);
            assert!(
                text.contains(&format!("{name}-{}(1)", sub.get_name())),
                "{name}.1 does not point at its subcommand page"
            );
            for flag in long_flags(sub) {
                assert!(
                    sub_text.contains(&flag),
                    "{} does not document {flag}:\n{sub_text}",
                    sub_page.display()
                );
            }
        }
    }
    // Every page written renders, subcommand pages included.
    for page in written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "1"))
    {
        groff_text(page);
    }
}

#[test]
fn completions_for_bash_zsh_and_fish_name_every_subcommand_and_flag() {
    let (dir, written) = generate();
    let comp = dir.path().join("completions");
    for cmd in stg_docgen::commands() {
        let name = cmd.get_name().to_owned();
        let bash = comp.join("bash").join(&name);
        let zsh = comp.join("zsh").join(format!("_{name}"));
        let fish = comp.join("fish").join(format!("{name}.fish"));
        for file in [&bash, &zsh, &fish] {
            assert!(written.contains(file), "{} not written", file.display());
        }
        let bash_text = std::fs::read_to_string(&bash).expect("bash completion");
        let zsh_text = std::fs::read_to_string(&zsh).expect("zsh completion");
        let fish_text = std::fs::read_to_string(&fish).expect("fish completion");

        // bash: sourcing it registers a completion function for the command.
        let out = program("bash")
            .arg("-c")
            .arg(format!(
                "set -e; source {}; complete -p {name}",
                bash.display()
            ))
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "sourcing {} failed: {}",
            bash.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!(" {name}")),
            "no completion registered for {name}"
        );
        assert!(
            zsh_text.starts_with(&format!("#compdef {name}\n")),
            "zsh file of {name} does not start with #compdef"
        );
        assert!(
            fish_text
                .lines()
                .any(|l| l.starts_with(&format!("complete -c {name} "))),
            "fish file of {name} registers no completion"
        );

        let mut all_flags = long_flags(&cmd);
        for sub in cmd.get_subcommands() {
            all_flags.extend(long_flags(sub));
        }
        for flag in &all_flags {
            assert!(
                bash_text.contains(flag.as_str()),
                "bash completion of {name} lacks {flag}"
            );
            assert!(
                zsh_text.contains(flag.as_str()),
                "zsh completion of {name} lacks {flag}"
            );
            let fish_flag = format!("-l {}", &flag[2..]);
            assert!(
                fish_text.contains(&fish_flag),
                "fish completion of {name} lacks {flag}"
            );
        }
        for sub in subcommand_names(&cmd) {
            for (shell, text) in [
                ("bash", &bash_text),
                ("zsh", &zsh_text),
                ("fish", &fish_text),
            ] {
                assert!(
                    text.contains(&sub),
                    "{shell} completion of {name} lacks {sub}"
                );
            }
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn make(args: &[String]) {
    let out = program("make")
        .arg("-C")
        .arg(repo_root())
        .arg("--no-print-directory")
        .args(args)
        .output();
    let Ok(out) = out else {
        stg_tests::require("make", "make");
    };
    assert!(
        out.status.success(),
        "make {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn make_install_files_puts_everything_where_distributions_look() {
    let builddir = bin_path("stg-docgen")
        .parent()
        .expect("target dir")
        .to_path_buf();
    let dest = tempfile::tempdir().expect("temp dir");
    let docgen = tempfile::tempdir().expect("temp dir");
    // Debian's layout: zsh functions in vendor-completions (see contrib/debian-layout.md).
    let vars = vec![
        format!("BUILDDIR={}", builddir.display()),
        format!("DOCGENDIR={}", docgen.path().join("out").display()),
        format!("DESTDIR={}", dest.path().display()),
        "PREFIX=/usr".to_owned(),
        "ZSHCOMPDIR=/usr/share/zsh/vendor-completions".to_owned(),
    ];
    let mut install = vec!["install-files".to_owned()];
    install.extend(vars.iter().cloned());
    make(&install);

    let root = dest.path().join("usr");
    for tool in stg_docgen::TOOLS {
        let bin = root.join("bin").join(tool);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&bin)
                .unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o755, "{} mode", bin.display());
        // The installed binary is the built one, and runs.
        let out = Command::new(&bin)
            .arg("--version")
            .output()
            .expect("run installed binary");
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with(tool),
            "{} --version: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        for file in [
            format!("share/man/man1/{tool}.1"),
            format!("share/bash-completion/completions/{tool}"),
            format!("share/zsh/vendor-completions/_{tool}"),
            format!("share/fish/vendor_completions.d/{tool}.fish"),
            format!("share/doc/stg/{tool}.md"),
        ] {
            assert!(root.join(&file).is_file(), "/usr/{file} not installed");
        }
    }
    assert!(root.join("share/man/man1/stg-hosts-apply.1").is_file());
    assert!(root.join("share/doc/stg/README.md").is_file());
    assert!(
        !root.join("bin/stg-docgen").exists(),
        "the build helper is not installed"
    );

    let mut uninstall = vec!["uninstall".to_owned()];
    uninstall.extend(vars);
    make(&uninstall);
    let left: Vec<_> = walk(dest.path())
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    assert!(left.is_empty(), "uninstall left {left:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("read dir")
        .map(Result::unwrap)
    {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

#[test]
fn an_output_directory_that_cannot_be_created_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").expect("write");
    let out = stg("stg-docgen")
        .arg("--out")
        .arg(&file)
        .output()
        .expect("run stg-docgen");
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&file.display().to_string()),
        "error does not name the path: {stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "x",
        "file untouched"
    );

    let out = stg("stg-docgen").output().expect("run stg-docgen");
    assert_eq!(out.status.code(), Some(2), "missing --out is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out"));
}

/// `contrib/stg.spec`: rpmbuild's %install (make install-files into the build root) and
/// its check of %files (every file listed exists, no installed file unpackaged) pass,
/// short-circuited onto the existing build instead of a fresh `cargo build --release`.
#[test]
fn rpm_spec_installs_every_file_it_lists() {
    let builddir = bin_path("stg-docgen")
        .parent()
        .expect("target dir")
        .to_path_buf();
    let top = tempfile::tempdir().expect("temp dir");
    let version = env!("CARGO_PKG_VERSION");
    std::fs::create_dir_all(top.path().join("BUILD")).unwrap();
    std::os::unix::fs::symlink(repo_root(), top.path().join(format!("BUILD/stg-{version}")))
        .unwrap();
    let out = program("rpmbuild")
        .args(["-bi", "--short-circuit", "--nodeps", "--define"])
        .arg(format!("_topdir {}", top.path().display()))
        .arg("--define")
        .arg(format!("rust_arches {}", std::env::consts::ARCH))
        .arg("--define")
        .arg(format!("stg_builddir {}", builddir.display()))
        .arg(repo_root().join("contrib/stg.spec"))
        .output();
    let Ok(out) = out else {
        stg_tests::require("rpmbuild (to check contrib/stg.spec)", "rpm");
    };
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "rpmbuild -bi failed:\n{log}");
    let buildroot = std::fs::read_dir(top.path().join("BUILDROOT"))
        .expect("a build root")
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("stg-{version}-")))
        })
        .unwrap_or_else(|| panic!("no build root for version {version}:\n{log}"));
    let usr = buildroot.join("usr");
    for tool in stg_docgen::TOOLS {
        for file in [
            format!("bin/{tool}"),
            format!("share/man/man1/{tool}.1"),
            format!("share/bash-completion/completions/{tool}"),
            format!("share/zsh/site-functions/_{tool}"),
            format!("share/fish/vendor_completions.d/{tool}.fish"),
            format!("share/doc/stg/{tool}.md"),
        ] {
            assert!(usr.join(&file).is_file(), "/usr/{file} not in the package");
        }
    }
    assert!(usr
        .join("share/doc/stg/ansible/roles/stg/tasks/main.yml")
        .is_file());
}

/// `make dist`: a tarball of the committed tree under `stg-VERSION/`, holding what
/// `rpmbuild -ta` needs (the spec) and what the build needs (Cargo.lock, every crate).
#[test]
fn make_dist_archives_the_committed_tree() {
    let dist = tempfile::tempdir().expect("temp dir");
    make(&[
        "dist".to_owned(),
        format!("DISTDIR={}", dist.path().display()),
    ]);
    let version = env!("CARGO_PKG_VERSION");
    let tarball = dist.path().join(format!("stg-{version}.tar.gz"));
    let out = program("tar")
        .arg("-tzf")
        .arg(&tarball)
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "{} is not a tar.gz",
        tarball.display()
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = listing.lines().collect();
    for path in [
        "Cargo.toml",
        "Cargo.lock",
        "Makefile",
        "contrib/stg.spec",
        "stg-docgen/src/lib.rs",
        "stg-hosts/src/lib.rs",
    ] {
        let want = format!("stg-{version}/{path}");
        assert!(names.contains(&want.as_str()), "{want} not in the tarball");
    }
    assert!(
        names
            .iter()
            .all(|n| n.starts_with(&format!("stg-{version}/"))),
        "everything under stg-{version}/"
    );
    assert!(
        !names.iter().any(|n| n.contains("/target/")),
        "no build output"
    );
}

/// `make help` names every target that has a `##` description and documents every
/// variable the Makefile lets a user set (`VAR ?= ...`).
#[test]
fn make_help_documents_every_variable() {
    let makefile = std::fs::read_to_string(repo_root().join("Makefile")).expect("Makefile");
    let out = program("make")
        .arg("-C")
        .arg(repo_root())
        .arg("--no-print-directory")
        .arg("help")
        .output()
        .expect("run make help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let variables: Vec<&str> = makefile
        .lines()
        .filter_map(|l| l.split_once("?=").map(|(name, _)| name.trim()))
        .filter(|name| !name.is_empty() && !name.contains(' '))
        .collect();
    assert!(variables.contains(&"PREFIX") && variables.contains(&"SSH"));
    for var in variables {
        assert!(
            help.contains(&format!("{var}=")),
            "make help does not document {var}:\n{help}"
        );
    }
    for target in [
        "install", "sync", "hosts", "probe", "age", "dist", "test", "demo",
    ] {
        assert!(
            help.lines().any(|l| l.starts_with(&format!("{target} "))),
            "make help does not list {target}:\n{help}"
        );
    }
}
