//! Running `git` and reading its output: the work tree's top level, shallowness, the tracked
//! files (`ls-files -z`), line origins (`blame --porcelain`) and file origins (`log --follow
//! --diff-filter=A`).
//!
//! Paths are bytes end to end (`-z` output, `OsStr` arguments), so names with spaces or
//! non-UTF-8 bytes survive. Nothing here knows what a staging condition is. A git that
//! cannot be run or that fails is a runtime error carrying git's own message.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use time::OffsetDateTime;

/// Where a line or a file came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A commit.
    Commit {
        /// Full commit id.
        id: String,
        /// Author name.
        author: String,
        /// Author date.
        at: OffsetDateTime,
    },
    /// Not committed yet (an edit in the work tree, or a file only in the index).
    Uncommitted,
}

/// A tracked file, as `git ls-files --stage` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    /// Path relative to the top level, raw bytes.
    pub path: Vec<u8>,
    /// True for a symbolic link (its target is not scanned).
    pub symlink: bool,
}

/// Configuration keys under which a repository's own config names a program git would run
/// while stg-age reads it: filters (run on work-tree files by `blame`), textconv and
/// external diff drivers, the fsmonitor hook, hooks.
fn runs_a_program(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let (section, rest) = key.split_once('.').unwrap_or((&key, ""));
    let leaf = rest.rsplit('.').next().unwrap_or("");
    match section {
        "filter" => matches!(leaf, "clean" | "smudge" | "process"),
        "diff" => matches!(leaf, "textconv" | "command" | "external"),
        "core" => matches!(
            rest,
            "fsmonitor" | "hookspath" | "pager" | "sshcommand" | "editor"
        ),
        // The signature verifiers `git log` runs on signed commits (`log.showSignature`,
        // forced off below, is what would make it).
        "gpg" => matches!(leaf, "program" | "defaultkeycommand"),
        _ => false,
    }
}

/// `-c KEY=VALUE` arguments that neutralise every program the repository's configuration
/// (with its includes) names, so that scanning a repository never runs code from it. Read
/// once per directory (`git config --list` runs nothing).
/// See: issue "Hardening, round 2", item 6; git-config(1), gitattributes(5).
fn neutralised(dir: &Path) -> Vec<OsString> {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<HashMap<PathBuf, Vec<OsString>>>> =
        std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(args) = cache.lock().expect("not poisoned").get(dir) {
        return args.clone();
    }
    let mut keys: Vec<String> = Command::new("git")
        .args(["config", "--list", "--includes", "--name-only", "-z"])
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map(|out| {
            out.stdout
                .split(|b| *b == 0)
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .filter(|k| runs_a_program(k))
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys.dedup();
    let mut args: Vec<OsString> = Vec::new();
    for setting in [
        "core.fsmonitor=false".to_owned(),
        "core.hooksPath=/dev/null".to_owned(),
        // No signature checks (they run gpg.program, and print into git log's output),
        // and git's output in UTF-8 whatever the repository asks (UTF-16 broke the parse).
        "log.showSignature=false".to_owned(),
        "i18n.logOutputEncoding=UTF-8".to_owned(),
    ]
    .into_iter()
    .chain(
        keys.iter()
            .filter(|k| {
                !k.eq_ignore_ascii_case("core.fsmonitor")
                    && !k.eq_ignore_ascii_case("core.hookspath")
            })
            .map(|k| format!("{k}=")),
    ) {
        args.push("-c".into());
        args.push(setting.into());
    }
    cache
        .lock()
        .expect("not poisoned")
        .insert(dir.to_owned(), args.clone());
    args
}

/// `git` in `dir`, run so that nothing in the repository executes: its program-running
/// settings neutralised, no pager, no prompt, no external diff.
pub(crate) fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PAGER", "cat")
        // A partial clone's missing blobs are never fetched from its promisor remote: a
        // scan reads what is here and touches no network (see [`crate::objects`]).
        .env("GIT_NO_LAZY_FETCH", "1")
        .env_remove("GIT_EXTERNAL_DIFF")
        .args(neutralised(dir));
    cmd
}

/// Runs `git args...` in `dir`; returns stdout, or an error with git's stderr.
pub fn run(dir: &Path, args: &[&OsStr]) -> anyhow::Result<Vec<u8>> {
    let out = git(dir)
        .args(args)
        .output()
        .context("could not run git (is it installed and on PATH?)")?;
    if !out.status.success() {
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        anyhow::bail!(
            "git {} failed ({}): {}",
            shown.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Runs `git --git-dir GIT_DIR args...` from `cwd` (a repository stg-age made itself),
/// with the same neutralised settings; returns stdout.
pub fn run_in_git_dir(cwd: &Path, git_dir: &Path, args: &[&OsStr]) -> anyhow::Result<Vec<u8>> {
    let out = git(cwd)
        .arg("--git-dir")
        .arg(git_dir)
        .args(args)
        .output()
        .context("could not run git")?;
    if !out.status.success() {
        anyhow::bail!(
            "git {} failed ({}): {}",
            args.first()
                .map(|a| a.to_string_lossy())
                .unwrap_or_default(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

fn os<'a>(args: &[&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(|a| OsStr::new(*a)).collect()
}

/// The top level of the work tree containing `dir`, or `Err(git's message)` when `dir` is
/// not inside a git work tree (a bare repository counts as not; so does a repository git
/// refuses to use, such as one owned by another user without `safe.directory`).
pub fn toplevel(dir: &Path) -> anyhow::Result<Result<PathBuf, String>> {
    let out = git(dir)
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .context("could not run git (is it installed and on PATH?)")?;
    if !out.status.success() || out.stdout.trim_ascii().is_empty() {
        return Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    let mut bytes = out.stdout;
    while bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    let top = PathBuf::from(OsString::from(OsStr::from_bytes(&bytes)));
    // A `core.worktree` (or GIT_WORK_TREE) elsewhere would make stg-age read files outside
    // the directory it was given.
    let inside = match (dir.canonicalize(), top.canonicalize()) {
        (Ok(d), Ok(t)) => d.starts_with(t),
        _ => false,
    };
    if !inside {
        return Ok(Err(format!(
            "the work tree git reports ({}) does not contain {} (core.worktree or \
             GIT_WORK_TREE points elsewhere); stg-age scans only the checkout it is given",
            top.display(),
            dir.display()
        )));
    }
    Ok(Ok(top))
}

/// True when the repository is a shallow clone.
pub fn is_shallow(top: &Path) -> anyhow::Result<bool> {
    let out = run(top, &os(&["rev-parse", "--is-shallow-repository"]))?;
    Ok(out.trim_ascii() == b"true")
}

/// True when `rev` names a commit.
pub fn is_commit(top: &Path, rev: &str) -> anyhow::Result<bool> {
    let out = git(top)
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{rev}^{{commit}}"))
        .output()
        .context("could not run git")?;
    Ok(out.status.success())
}

/// The commit `HEAD` is, or `None` on a branch without commits yet.
pub fn head(top: &Path) -> anyhow::Result<Option<String>> {
    let out = git(top)
        .args(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
        .output()
        .context("could not run git")?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok((out.status.success() && !id.is_empty()).then_some(id))
}

/// The commit id `rev` names.
pub fn resolve(top: &Path, rev: &str) -> anyhow::Result<String> {
    let spec = format!("{rev}^{{commit}}");
    let out = run(
        top,
        &[
            OsStr::new("rev-parse"),
            OsStr::new("--verify"),
            OsStr::new("--end-of-options"),
            OsStr::new(&spec),
        ],
    )?;
    Ok(String::from_utf8_lossy(&out).trim().to_owned())
}

/// Tracked regular files and symlinks under `dir`, paths relative to the top level
/// (submodules are left out; a path in conflict is listed once).
pub fn ls_files(dir: &Path) -> anyhow::Result<Vec<Tracked>> {
    let out = run(dir, &os(&["ls-files", "-z", "--stage", "--full-name"]))?;
    let mut files: Vec<Tracked> = Vec::new();
    for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        // `<mode> <object> <stage>\t<path>`
        let Some(tab) = record.iter().position(|b| *b == b'\t') else {
            anyhow::bail!(
                "unexpected git ls-files output: {}",
                String::from_utf8_lossy(record)
            );
        };
        let mode = record[..tab]
            .split(|b| *b == b' ')
            .next()
            .unwrap_or_default();
        let path = record[tab + 1..].to_vec();
        if mode == b"160000" || files.last().is_some_and(|f| f.path == path) {
            continue;
        }
        files.push(Tracked {
            path,
            symlink: mode == b"120000",
        });
    }
    Ok(files)
}

/// What `blame` needs besides the file and lines.
#[derive(Clone, Debug, Default)]
pub struct BlameOptions {
    /// `--ignore-revs-file` (the repository's `.git-blame-ignore-revs` when present).
    pub ignore_revs_file: Option<PathBuf>,
    /// `--ignore-rev`, each.
    pub ignore_revs: Vec<String>,
}

/// The origin of every line in `ranges` (1-based, inclusive, ascending, not overlapping)
/// of `path` in the work tree, in one `git blame --porcelain -w -M -C` with one `-L a,b`
/// per range. Returns `(line, origin)` pairs in git's order.
pub fn blame(
    top: &Path,
    path: &[u8],
    ranges: &[(usize, usize)],
    options: &BlameOptions,
) -> anyhow::Result<Vec<(usize, Origin)>> {
    Ok(blame_with(top, path, ranges, options, None, true, None)?
        .into_iter()
        .map(|(line, origin, _)| (line, origin))
        .collect())
}

/// [`blame`] over the history given by `grafts` (`git blame -S`, see
/// [`crate::history::History::grafts`]), or over the whole history when `None`; without
/// `-C` when `copies` is false (for lines that provably were not copied from another
/// file, it gives the same answer for less work). With `stop`, the walk ends at that
/// commit (`^stop`): lines older than it are blamed on it. Each line comes with the path it
/// had in the commit it is blamed on.
pub fn blame_with(
    top: &Path,
    path: &[u8],
    ranges: &[(usize, usize)],
    options: &BlameOptions,
    grafts: Option<&[u8]>,
    copies: bool,
    stop: Option<&str>,
) -> anyhow::Result<Vec<(usize, Origin, Vec<u8>)>> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let mut args: Vec<OsString> = ["blame", "--no-textconv", "--porcelain", "-w", "-M"]
        .iter()
        .map(OsString::from)
        .collect();
    if copies {
        args.push("-C".into());
    }
    // Only .git-blame-ignore-revs and --ignore-rev are looked through, whatever git's
    // blame.ignoreRevsFile says: an empty --ignore-revs-file clears the revisions read
    // from configuration before ours. (`-c blame.ignoreRevsFile=` does not: git sorts the
    // configured names, so the empty one clears the list before the others are read.)
    // git still opens a file the configuration names; one that is missing fails the blame.
    args.push("--ignore-revs-file=".into());
    if let Some(file) = &options.ignore_revs_file {
        args.push("--ignore-revs-file".into());
        args.push(file.clone().into_os_string());
    }
    for rev in &options.ignore_revs {
        args.push("--ignore-rev".into());
        args.push(rev.into());
    }
    if grafts.is_some() {
        // Read before blame starts: git reads the whole file, then walks.
        args.push("-S".into());
        args.push("/dev/stdin".into());
    }
    for (first, last) in ranges {
        args.push("-L".into());
        args.push(format!("{first},{last}").into());
    }
    if let Some(stop) = stop {
        args.push(format!("^{stop}").into());
    }
    args.push("--".into());
    args.push(OsStr::from_bytes(path).to_owned());
    let out = match grafts {
        None => {
            let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
            run(top, &refs)?
        }
        Some(grafts) => run_with_input(top, &args, grafts)?,
    };
    parse_porcelain_named(&out).with_context(|| {
        format!(
            "while reading git blame output for {}",
            String::from_utf8_lossy(path)
        )
    })
}

/// Runs `git args...` in `dir` with `input` on its stdin.
fn run_with_input(dir: &Path, args: &[OsString], input: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut child = git(dir)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("could not run git (is it installed and on PATH?)")?;
    let mut stdin = child.stdin.take().context("git's stdin")?;
    // git reads all of the file before it writes anything, so this cannot deadlock; a git
    // that failed early closes the pipe, and its status says why.
    let written = stdin.write_all(input);
    drop(stdin);
    let out = child.wait_with_output().context("while waiting for git")?;
    if !out.status.success() {
        anyhow::bail!(
            "git blame failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    written.context("while writing to git blame")?;
    Ok(out.stdout)
}

/// Seconds since 1970 as git prints a commit's date (`author-time`, `%at`, `%ct`), read as
/// `git blame` reads it: the digits the commit holds, saturating (here at `i64::MAX`), and
/// none (what `%at` prints for a date git cannot read) as 0, the `author-time` blame gives
/// then. `None` for text that is not digits. A commit can hold any date: git accepts
/// `--date=@999999999999` (the year 33658), and a crafted one holds any digits.
#[must_use]
pub fn seconds(text: &[u8]) -> Option<i64> {
    let digits = text.trim_ascii();
    digits.iter().all(u8::is_ascii_digit).then(|| {
        digits.iter().fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        })
    })
}

/// The moment `secs` (Unix seconds) names, clamped to what an [`OffsetDateTime`] holds (the
/// years -9999 to 9999): a commit dated after the year 9999 is dated at its last second, in
/// the future of any `--now` and reported so, instead of failing the whole scan.
#[must_use]
pub fn moment(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(if secs < 0 {
        time::macros::datetime!(-9999-01-01 0:00 UTC)
    } else {
        time::macros::datetime!(9999-12-31 23:59:59 UTC)
    })
}

fn epoch(text: &str) -> anyhow::Result<OffsetDateTime> {
    let secs = seconds(text.as_bytes()).with_context(|| format!("bad timestamp {text:?}"))?;
    Ok(moment(secs))
}

/// Parses `git blame --porcelain` output: a header per line (`<id> <orig> <final> [n]`),
/// the commit's fields the first time a commit appears, then the line itself after a tab.
pub fn parse_porcelain(out: &[u8]) -> anyhow::Result<Vec<(usize, Origin)>> {
    Ok(parse_porcelain_named(out)?
        .into_iter()
        .map(|(line, origin, _)| (line, origin))
        .collect())
}

/// [`parse_porcelain`], each line with its path in the commit it is blamed on (the
/// `filename` field: given the first time a commit appears, and again with every group
/// when the commit is seen under more than one path).
pub fn parse_porcelain_named(out: &[u8]) -> anyhow::Result<Vec<(usize, Origin, Vec<u8>)>> {
    struct Seen {
        author: String,
        at: Option<OffsetDateTime>,
        filename: Vec<u8>,
    }
    let mut commits: HashMap<String, Seen> = HashMap::new();
    let mut result = Vec::new();
    // The current header's commit and final line, and the filename given in its group.
    let mut current: Option<(String, usize, Option<Vec<u8>>)> = None;
    for raw in out.split(|b| *b == b'\n') {
        if raw.first() == Some(&b'\t') {
            let Some((id, line, named)) = current.take() else {
                anyhow::bail!("content line without a header");
            };
            let seen = commits
                .get_mut(&id)
                .context("a commit without its header")?;
            if let Some(name) = named {
                seen.filename = name;
            }
            let origin = if id.bytes().all(|b| b == b'0') {
                Origin::Uncommitted
            } else {
                Origin::Commit {
                    id: id.clone(),
                    author: seen.author.clone(),
                    at: seen.at.context("commit without an author-time")?,
                }
            };
            result.push((line, origin, seen.filename.clone()));
            continue;
        }
        if current.is_none() {
            let text = String::from_utf8_lossy(raw);
            let mut fields = text.split(' ');
            let id = fields.next().unwrap_or_default();
            // SHA-1 (40 digits) or SHA-256 (64) object names.
            if matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                let _orig = fields.next();
                let line: usize = fields
                    .next()
                    .and_then(|f| f.parse().ok())
                    .context("blame header without a line number")?;
                commits.entry(id.to_owned()).or_insert_with(|| Seen {
                    author: String::new(),
                    at: None,
                    filename: Vec::new(),
                });
                current = Some((id.to_owned(), line, None));
            }
            continue;
        }
        let (id, _, named) = current.as_mut().expect("checked");
        let seen = commits
            .get_mut(id.as_str())
            .expect("inserted with the header");
        if let Some(name) = raw.strip_prefix(b"filename ") {
            *named = Some(unquote(name));
        } else if let Some(name) = raw.strip_prefix(b"author ") {
            seen.author = String::from_utf8_lossy(name).into_owned();
        } else if let Some(t) = raw.strip_prefix(b"author-time ") {
            seen.at = Some(epoch(&String::from_utf8_lossy(t))?);
        }
    }
    Ok(result)
}

/// A path as git quotes it in porcelain output (`"a\tb"`, octal escapes for bytes that
/// are not printable ASCII); an unquoted path as it is.
pub(crate) fn unquote(raw: &[u8]) -> Vec<u8> {
    let Some(inner) = raw.strip_prefix(b"\"").and_then(|r| r.strip_suffix(b"\"")) else {
        return raw.to_vec();
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        if b != b'\\' || i + 1 >= inner.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let e = inner[i + 1];
        i += 2;
        out.push(match e {
            b'n' => b'\n',
            b't' => b'\t',
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'r' => b'\r',
            b'v' => 11,
            b'0'..=b'7' => {
                let digits = &inner[i - 1..(i + 2).min(inner.len())];
                i = (i + 2).min(inner.len());
                digits.iter().fold(0u8, |acc, d| {
                    acc.wrapping_mul(8).wrapping_add(d.wrapping_sub(b'0'))
                })
            }
            other => other,
        });
    }
    out
}

/// The commit that added `path`, following renames: the oldest `A` in `git log --follow`.
/// `Uncommitted` when the file is only in the index.
pub fn added(top: &Path, path: &[u8]) -> anyhow::Result<Origin> {
    added_by(top, path, true)
}

/// [`added`] without following renames (`renames: false`): the oldest addition under this
/// name, which reads no blob. For a file whose history cannot all be read.
pub fn added_by(top: &Path, path: &[u8], renames: bool) -> anyhow::Result<Origin> {
    let args = [
        OsStr::new("log"),
        OsStr::new("--no-textconv"),
        OsStr::new("--no-ext-diff"),
        OsStr::new(if renames { "--follow" } else { "--no-renames" }),
        OsStr::new("--diff-filter=A"),
        OsStr::new("--format=%H%x00%aN%x00%at"),
        OsStr::new("--"),
        OsStr::from_bytes(path),
    ];
    let out = run(top, &args)?;
    let text = String::from_utf8_lossy(&out);
    let Some(last) = text.lines().rfind(|l| !l.trim().is_empty()) else {
        return Ok(Origin::Uncommitted);
    };
    let mut fields = last.split('\0');
    let (Some(id), Some(author), Some(at)) = (fields.next(), fields.next(), fields.next()) else {
        anyhow::bail!("unexpected git log output: {last:?}");
    };
    Ok(Origin::Commit {
        id: id.to_owned(),
        author: author.to_owned(),
        at: epoch(at)?,
    })
}

/// [`added`] for many files in one walk of the history: `git log -M --diff-filter=AR
/// --name-status -z`, newest first, following each path back through its renames and
/// keeping the oldest addition, as `added` does. Paths never added in a commit (only in the
/// index) are `Uncommitted`. One walk costs about what one `--follow` walk costs, so this
/// wins when there are more than a few variant files.
pub fn added_many(top: &Path, paths: &[Vec<u8>]) -> anyhow::Result<Vec<Origin>> {
    added_many_in(top, paths, &[])
}

/// [`added_many`] with `pathspec` after `--` (every commit still walked: `--full-history
/// --sparse`), so that git never reads the paths it leaves out.
pub fn added_many_in(
    top: &Path,
    paths: &[Vec<u8>],
    pathspec: &[OsString],
) -> anyhow::Result<Vec<Origin>> {
    let mut args: Vec<&OsStr> = os(&[
        "log",
        "--no-textconv",
        "--no-ext-diff",
        "-z",
        "-M",
        "--diff-filter=AR",
        "--name-status",
        "--format=commit %H%x00%aN%x00%at",
    ]);
    if !pathspec.is_empty() {
        args.extend(os(&["--full-history", "--sparse", "--"]));
        args.extend(pathspec.iter().map(OsString::as_os_str));
    }
    let out = run(top, &args)?;
    let mut origins = vec![Origin::Uncommitted; paths.len()];
    // The name each wanted file has at the point of history being read.
    let mut wanted: std::collections::HashMap<Vec<u8>, usize> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), i))
        .collect();
    let mut tokens = out.split(|b| *b == 0);
    let mut commit: Option<Origin> = None;
    let malformed = |what: &[u8]| {
        anyhow::anyhow!(
            "unexpected git log output near {:?}",
            String::from_utf8_lossy(what)
        )
    };
    while let Some(token) = tokens.next() {
        let token = token.strip_prefix(b"\n").unwrap_or(token);
        if token.is_empty() {
            continue;
        }
        if let Some(id) = token.strip_prefix(b"commit ") {
            let author = tokens.next().ok_or_else(|| malformed(token))?;
            let at = tokens.next().ok_or_else(|| malformed(token))?;
            commit = Some(Origin::Commit {
                id: String::from_utf8_lossy(id).into_owned(),
                author: String::from_utf8_lossy(author).into_owned(),
                at: epoch(&String::from_utf8_lossy(at))?,
            });
        } else if token == b"A" {
            let path = tokens.next().ok_or_else(|| malformed(token))?;
            if let (Some(&i), Some(origin)) = (wanted.get(path), &commit) {
                origins[i] = origin.clone();
            }
        } else if token.first() == Some(&b'R') {
            let from = tokens.next().ok_or_else(|| malformed(token))?;
            let to = tokens.next().ok_or_else(|| malformed(token))?;
            if let Some(i) = wanted.remove(to) {
                wanted.insert(from.to_vec(), i);
            }
        } else {
            return Err(malformed(token));
        }
    }
    Ok(origins)
}

/// Tracked paths whose work-tree content may differ from `HEAD` (`git diff-index HEAD`:
/// edited, staged, added, deleted; a file whose stat information is stale is listed too).
pub fn dirty(top: &Path) -> anyhow::Result<std::collections::HashSet<Vec<u8>>> {
    let out = run(
        top,
        &os(&[
            "diff-index",
            "-z",
            "--name-only",
            "--no-renames",
            "HEAD",
            "--",
        ]),
    )?;
    Ok(out
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// The value of a configuration key as the repository sees it, `None` when unset.
pub fn config(top: &Path, key: &str) -> anyhow::Result<Option<String>> {
    let out = git(top)
        .args(["config", "--includes", "--get", key])
        .output()
        .context("could not run git")?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned()))
}

/// A `git cat-file --batch` kept running: objects by name (`<blob id>` or
/// `<commit>:<path>`), one round trip each, with git's object caches warm across them.
pub struct CatFile {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl CatFile {
    /// Starts one in `top`.
    pub fn start(top: &Path) -> anyhow::Result<CatFile> {
        let mut child = git(top)
            .args(["cat-file", "--batch"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("could not run git cat-file")?;
        let input = child.stdin.take().context("git cat-file's stdin")?;
        let output = std::io::BufReader::new(child.stdout.take().context("git cat-file's stdout")?);
        Ok(CatFile {
            child,
            input,
            output,
        })
    }

    /// The id and content of the blob `name` names; `None` when there is no such blob (or
    /// the name cannot be asked for: it holds a newline).
    pub fn blob(&mut self, name: &[u8]) -> anyhow::Result<Option<(String, Vec<u8>)>> {
        use std::io::{BufRead as _, Read as _, Write as _};
        if name.contains(&b'\n') {
            return Ok(None);
        }
        self.input.write_all(name)?;
        self.input.write_all(b"\n")?;
        self.input.flush()?;
        let mut header = Vec::new();
        self.output.read_until(b'\n', &mut header)?;
        let text = String::from_utf8_lossy(&header);
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        match fields.as_slice() {
            [oid, "blob", size] => {
                let size: usize = size.parse().context("git cat-file: bad size")?;
                let mut content = vec![0; size + 1];
                self.output.read_exact(&mut content)?;
                content.pop();
                Ok(Some(((*oid).to_owned(), content)))
            }
            [_, kind, size] => {
                // Another kind of object: read past it.
                let size: u64 = size.parse().context("git cat-file: bad size")?;
                let _ = kind;
                std::io::copy(&mut (&mut self.output).take(size + 1), &mut std::io::sink())?;
                Ok(None)
            }
            [.., "missing" | "ambiguous"] => Ok(None),
            _ => anyhow::bail!("unexpected git cat-file output: {text:?}"),
        }
    }
}

impl Drop for CatFile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commit id git gives lines not committed yet (all zeros, at either id length).
    const NULL_ID: &str = "0000000000000000000000000000000000000000";

    #[test]
    fn dates_git_prints_are_read_as_blame_reads_them() {
        assert_eq!(seconds(b"1577836800"), Some(1_577_836_800));
        // A date git could not read: `%at` is empty, blame says 0.
        assert_eq!(seconds(b""), Some(0));
        assert_eq!(seconds(b"18446744073709551615"), Some(i64::MAX));
        assert_eq!(seconds(b"99999999999999999999999"), Some(i64::MAX));
        assert_eq!(seconds(b"-5"), None);
        assert_eq!(moment(0), OffsetDateTime::UNIX_EPOCH);
        // `--date=@999999999999` (the year 33658): the last second a date holds.
        let last = time::macros::datetime!(9999-12-31 23:59:59 UTC);
        assert_eq!(moment(999_999_999_999), last);
        assert_eq!(moment(i64::MAX), last);
        assert_eq!(moment(last.unix_timestamp()), last);
        let id = "717cb150b2274adf6c21aa67108fd30ef2235f65";
        let out = format!("{id} 1 1 1\nauthor A\nauthor-time 18446744073709551615\n\tx\n");
        let parsed = parse_porcelain(out.as_bytes()).unwrap();
        assert!(matches!(&parsed[0].1, Origin::Commit { at, .. } if *at == last));
    }

    #[test]
    fn porcelain_repeated_commits_and_uncommitted_lines() {
        let id = "717cb150b2274adf6c21aa67108fd30ef2235f65";
        let out = format!(
            "{id} 1 1 1\nauthor T One\nauthor-mail <t@x>\nauthor-time 1577836800\nsummary one\nboundary\nfilename f\n\tline one\n\
             {NULL_ID} 2 2 1\nauthor Not Committed Yet\nauthor-time 1795832087\nfilename f\n\tB\n\
             {id} 3 3 1\n\tenv\n"
        );
        let parsed = parse_porcelain(out.as_bytes()).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[1], (2, Origin::Uncommitted));
        let Origin::Commit { author, at, .. } = &parsed[2].1 else {
            panic!("not a commit")
        };
        assert_eq!(author, "T One");
        assert_eq!(at.unix_timestamp(), 1_577_836_800);
    }
}
