//! Reading and replacing a hosts file without ever losing it, and without being led
//! anywhere else by a symbolic link.
//!
//! A change is made under an exclusive `flock` on `<file>.stg-lock` beside the file (the
//! file itself is replaced by rename, so it cannot carry the lock), after re-reading the
//! file under that lock. The old bytes are first copied to `<file>.stg-bak.<UTC stamp>`;
//! the new bytes go to a temporary file in the same directory, which gets the original's
//! mode, owner and SELinux label (`security.selinux`), is fsynced and renamed over the
//! original, and the directory is fsynced. When the rename fails with `EBUSY` (a
//! bind-mounted `/etc/hosts` in a container), the file is written in place and read back;
//! if that fails the original bytes are written back. Old backups beyond `--keep-backups`
//! are deleted after a successful change, never the one this run just made; temporary
//! files left by a killed run are removed under the lock.
//!
//! **Links** (stg-hosts runs as root, often on a chroot or container tree that someone
//! else controls). The path is resolved here, one component at a time, from directory
//! descriptors ([`Target::new`]); every later step works on the final directory's
//! descriptor with `*at` calls, so a directory swapped for a link meanwhile is never
//! followed. The hosts file is opened `O_NOFOLLOW` (and `O_NONBLOCK`, and must be a regular
//! file of at most [`MAX_HOSTS_BYTES`]); the lock, backup and temporary files are opened
//! `O_NOFOLLOW`, and created `O_CREAT|O_EXCL` (the lock: `O_CREAT` without `O_EXCL`, as it
//! is kept between runs, and refused unless a regular file). A link found on the way is
//! refused unless [`Resolve::follow_symlink`], and even then only resolved within what the
//! user named: without a root, a link at the file itself may lead only below the directory
//! holding it (no absolute target, no `..` above it), and the directories on the way to the
//! file are never followed; with [`Resolve::root`], every component is resolved as if the
//! root were `/` (absolute targets start at the root, `..` stops there), like a chroot.
//!
//! Not for deciding what to write (see [`crate::hosts_block`]).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use stg_core::Error;

const SELINUX_XATTR: &str = "security.selinux";

/// The largest hosts file read: 16 MiB, thousands of times a real one (a big ad-blocking
/// hosts file is a few MiB). A larger file is refused, not read.
pub const MAX_HOSTS_BYTES: u64 = 16 << 20;

/// Links followed on the way to the file, at most (as the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// How the path named on the command line is resolved.
#[derive(Clone, Debug, Default)]
pub struct Resolve {
    /// Resolve the path inside this directory, as if it were `/` (`--root`).
    pub root: Option<PathBuf>,
    /// Follow symbolic links, within the file's directory or the root (`--follow-symlink`).
    pub follow_symlink: bool,
}

/// How the new bytes reached the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Temporary file renamed over the original.
    Rename,
    /// Written in place (rename was refused with EBUSY) and read back.
    InPlace,
}

/// What a successful change did.
#[derive(Debug)]
pub struct Written {
    /// The backup of the old bytes.
    pub backup: PathBuf,
    /// How the file was replaced.
    pub method: Method,
    /// Old backups deleted by `--keep-backups`.
    pub pruned: Vec<PathBuf>,
}

/// A hosts file named on the command line, resolved to the directory that really holds it
/// (kept open) and its name there.
#[derive(Debug)]
pub struct Target {
    /// The directory holding the file (opened for reading when allowed, else `O_PATH`).
    dir: OwnedFd,
    /// The directory's path, for messages.
    dir_shown: PathBuf,
    /// The file's name in `dir`.
    name: OsString,
    /// The file's path, for messages and reports.
    path: PathBuf,
}

/// A path found in the tree, for a message: names and link targets there are whatever the
/// tree's owner made them, so control characters are escaped (`stg_core::terminal`).
fn quoted(path: &Path) -> std::borrow::Cow<'_, str> {
    stg_core::terminal::escape_bytes(path.as_os_str().as_bytes())
}

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// Where links may lead during a walk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Contain {
    /// As in a chroot: absolute targets restart at the anchor, `..` stops there.
    Root,
    /// Below the anchor only: an absolute target or a `..` above it is refused.
    Beneath,
}

/// One resolution of a path below an anchor directory, one component at a time.
struct Walk<'a> {
    /// The path as the user gave it (inside the root: joined to it), for messages.
    named: &'a Path,
    /// The anchor's path, for messages.
    anchor_shown: PathBuf,
    contain: Contain,
    follow: bool,
}

/// The end of a walk: a directory and, unless the walk wanted a directory, a name in it.
struct Found {
    dir: OwnedFd,
    dir_shown: PathBuf,
    name: Option<OsString>,
}

/// The components of a relative path (a leading `/` ignored), as names.
fn names(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn open_dir_path(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The directory `dir` reopened for reading (listing, fsync); the `O_PATH` descriptor itself
/// when reading it is not allowed (enough to read the file: not to change it).
fn readable_dir(dir: BorrowedFd<'_>) -> anyhow::Result<OwnedFd> {
    match rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(fd),
        Err(Errno::ACCESS) => Ok(rustix::io::fcntl_dupfd_cloexec(dir, 0).map_err(io)?),
        Err(e) => Err(io(e).into()),
    }
}

impl Walk<'_> {
    fn refuse(&self, why: impl std::fmt::Display) -> anyhow::Error {
        Error::usage(format!("hosts file {}: {why}", self.named.display())).into()
    }

    /// Resolves `rel` below `anchor`. With `want_dir`, every component must lead to a
    /// directory, which is returned; otherwise the last component is returned as a name in
    /// its directory (it need not exist; a link there is followed or refused like any).
    fn run(&self, anchor: &OwnedFd, rel: &Path, want_dir: bool) -> anyhow::Result<Found> {
        let mut todo = names(rel);
        // The directories entered below the anchor, with their names.
        let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
        let mut links = 0usize;
        let shown = |stack: &[(OwnedFd, OsString)], last: Option<&OsStr>| -> PathBuf {
            let mut p = self.anchor_shown.clone();
            for (_, n) in stack {
                p.push(n);
            }
            if let Some(last) = last {
                p.push(last);
            }
            p
        };
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                if stack.pop().is_none() && self.contain == Contain::Beneath {
                    return Err(self.refuse(format_args!(
                        "a symbolic link leads above {}; links are followed only below the directory holding the file (or inside --root)",
                        quoted(&self.anchor_shown)
                    )));
                }
                continue;
            }
            let cur = stack.last().map_or(anchor.as_fd(), |(fd, _)| fd.as_fd());
            let here = shown(&stack, Some(&c));
            let stat = match rustix::fs::statat(cur, &c, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => Some(stat),
                Err(Errno::NOENT) => None,
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "cannot read hosts file {}: {}: {}",
                        self.named.display(),
                        quoted(&here),
                        io(e)
                    ))
                }
            };
            let kind = stat.map(|s| FileType::from_raw_mode(s.st_mode));
            if kind == Some(FileType::Symlink) {
                let target = rustix::fs::readlinkat(cur, &c, Vec::new()).map_err(|e| {
                    anyhow::anyhow!("cannot read the link {}: {}", quoted(&here), io(e))
                })?;
                let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                if !self.follow {
                    return Err(self.refuse(format_args!(
                        "{} is a symbolic link (to {}); stg-hosts does not follow links \
                         unless --follow-symlink is given{}",
                        quoted(&here),
                        quoted(&target),
                        if want_dir {
                            ", and never in the directories on the way to the file without \
                             --root: name the real path, or give --root"
                        } else {
                            ""
                        }
                    )));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(self.refuse("too many levels of symbolic links"));
                }
                if target.is_absolute() {
                    if self.contain == Contain::Beneath {
                        return Err(self.refuse(format_args!(
                            "{} is a symbolic link to the absolute path {}; without --root, \
                             links are followed only below the directory holding the file",
                            quoted(&here),
                            quoted(&target)
                        )));
                    }
                    stack.clear();
                }
                let mut next = names(&target);
                if next.is_empty() && todo.is_empty() && !want_dir {
                    return Err(self.refuse(format_args!(
                        "{} is a symbolic link to a directory",
                        quoted(&here)
                    )));
                }
                next.extend(todo.drain(..));
                todo = next;
                continue;
            }
            if todo.is_empty() && !want_dir {
                let cur = stack.last().map_or(anchor.as_fd(), |(fd, _)| fd.as_fd());
                return Ok(Found {
                    dir: readable_dir(cur)?,
                    dir_shown: shown(&stack, None),
                    name: Some(c),
                });
            }
            match kind {
                Some(FileType::Directory) => {
                    let fd = open_dir_path(cur, &c).map_err(|e| {
                        anyhow::anyhow!("cannot open the directory {}: {}", quoted(&here), io(e))
                    })?;
                    stack.push((fd, c));
                }
                None => {
                    return Err(Error::usage(format!(
                        "hosts file {} does not exist ({} is missing)",
                        self.named.display(),
                        quoted(&here)
                    ))
                    .into())
                }
                Some(_) => {
                    return Err(self.refuse(format_args!("{} is not a directory", quoted(&here))))
                }
            }
        }
        if !want_dir {
            return Err(self.refuse("names a directory, not a file"));
        }
        let cur = stack.last().map_or(anchor.as_fd(), |(fd, _)| fd.as_fd());
        Ok(Found {
            dir: readable_dir(cur)?,
            dir_shown: shown(&stack, None),
            name: None,
        })
    }
}

/// Classifies an error opening the hosts file: a missing file, a link or a special file is
/// the user's bad input; anything else (permissions, I/O) a runtime failure.
fn open_error(path: &Path, e: Errno) -> anyhow::Error {
    match e {
        Errno::NOENT => Error::usage(format!("hosts file {} does not exist", path.display())).into(),
        Errno::LOOP => Error::usage(format!(
            "hosts file {} is a symbolic link; stg-hosts does not follow links unless --follow-symlink is given",
            path.display()
        ))
        .into(),
        e => anyhow::anyhow!("cannot read hosts file {}: {}", path.display(), io(e)),
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .context("while finding the current directory")?
            .join(path))
    }
}

impl Target {
    /// Resolves `path` as `how` says (see the module documentation); a missing file is a
    /// usage error when it is read, a link that may not be followed one now.
    pub fn new(path: &Path, how: &Resolve) -> anyhow::Result<Target> {
        let found = if let Some(root) = &how.root {
            let root_shown = absolute(root)?;
            let named = root_shown.join(path.strip_prefix("/").unwrap_or(path));
            let anchor = rustix::fs::openat(
                rustix::fs::CWD,
                root,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| match e {
                Errno::NOENT | Errno::NOTDIR => anyhow::Error::from(Error::usage(format!(
                    "--root {}: no such directory",
                    root.display()
                ))),
                e => anyhow::anyhow!("--root {}: {}", root.display(), io(e)),
            })?;
            Walk {
                named: &named,
                anchor_shown: root_shown,
                contain: Contain::Root,
                follow: how.follow_symlink,
            }
            .run(&anchor, path, false)?
        } else {
            let full = absolute(path)?;
            let (Some(parent), Some(_)) = (full.parent(), path.file_name()) else {
                stg_core::bail_usage!(
                    "hosts file {}: names a directory, not a file",
                    path.display()
                );
            };
            let slash = rustix::fs::openat(
                rustix::fs::CWD,
                "/",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io)?;
            // The directories on the way: never through a link.
            let dir = Walk {
                named: path,
                anchor_shown: PathBuf::from("/"),
                contain: Contain::Root,
                follow: false,
            }
            .run(&slash, parent, true)?;
            // The file itself: a link only with --follow-symlink, and then only below
            // the directory that holds it.
            let name = full.file_name().unwrap_or_default();
            Walk {
                named: path,
                anchor_shown: dir.dir_shown,
                contain: Contain::Beneath,
                follow: how.follow_symlink,
            }
            .run(&dir.dir, Path::new(name), false)?
        };
        let name = found.name.unwrap_or_default();
        Ok(Target {
            path: found.dir_shown.join(&name),
            dir: found.dir,
            dir_shown: found.dir_shown,
            name,
        })
    }

    /// The resolved path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn shown(&self, name: &OsStr) -> PathBuf {
        self.dir_shown.join(name)
    }

    /// Opens the file itself, never through a link.
    fn open(&self, flags: OFlags) -> Result<File, Errno> {
        rustix::fs::openat(
            &self.dir,
            &self.name,
            flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(File::from)
    }

    /// Creates `name` beside the file, failing if anything (a link too) is there.
    fn create_new(&self, name: &OsStr, mode: u32) -> Result<File, Errno> {
        rustix::fs::openat(
            &self.dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map(File::from)
    }

    /// Reads the whole file: a regular file of at most [`MAX_HOSTS_BYTES`], never through
    /// a link, never waiting on a FIFO.
    pub fn read(&self) -> anyhow::Result<Vec<u8>> {
        let file = self
            .open(OFlags::RDONLY)
            .map_err(|e| open_error(&self.path, e))?;
        let shown = format!("hosts file {}", self.path.display());
        stg_core::files::read_opened(file, &shown, MAX_HOSTS_BYTES).map_err(|e| match e {
            stg_core::files::ReadError::Refused(why) => anyhow::anyhow!("{why}"),
            other => Error::usage(other.to_string()).into(),
        })
    }

    fn lock_name(&self) -> OsString {
        let mut n = self.name.clone();
        n.push(".stg-lock");
        n
    }

    /// The lock file beside the target.
    pub fn lock_path(&self) -> PathBuf {
        self.shown(&self.lock_name())
    }

    /// Takes the exclusive lock (waiting for another stg-hosts to finish). The lock file is
    /// created if missing and kept; a link or anything but a regular file there is refused.
    pub fn lock(&self) -> anyhow::Result<Locked<'_>> {
        let lock_path = self.lock_path();
        let fd = rustix::fs::openat(
            &self.dir,
            self.lock_name(),
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| {
            let why = if e == Errno::LOOP {
                "it is a symbolic link, which is never followed (remove it)".to_owned()
            } else {
                io(e).to_string()
            };
            anyhow::anyhow!(
                "cannot change {}: while creating the lock file {}: {why}",
                self.path.display(),
                lock_path.display()
            )
        })?;
        let file = File::from(fd);
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            anyhow::bail!(
                "cannot change {}: the lock file {} is not a regular file (remove it)",
                self.path.display(),
                lock_path.display()
            );
        }
        let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| {
            anyhow::anyhow!("while locking {}: {errno}", lock_path.display())
        })?;
        let locked = Locked {
            target: self,
            _lock: lock,
        };
        locked.remove_stale_temporaries();
        Ok(locked)
    }

    fn temp_prefix(&self) -> Vec<u8> {
        let mut p = b".".to_vec();
        p.extend_from_slice(self.name.as_bytes());
        p.extend_from_slice(b".stg-tmp.");
        p
    }

    fn backup_prefix(&self) -> Vec<u8> {
        let mut p = self.name.as_bytes().to_vec();
        p.extend_from_slice(b".stg-bak.");
        p
    }

    /// Names in the file's directory.
    fn entries(&self) -> anyhow::Result<Vec<OsString>> {
        let dir = rustix::fs::Dir::read_from(&self.dir).map_err(|e| {
            anyhow::anyhow!("while listing {}: {}", self.dir_shown.display(), io(e))
        })?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| {
                anyhow::anyhow!("while listing {}: {}", self.dir_shown.display(), io(e))
            })?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(name).to_owned());
            }
        }
        Ok(names)
    }

    /// Existing backups (regular files named `FILE.stg-bak.STAMP[.N]`), oldest stamp first,
    /// each with its `(stamp, N)`.
    fn backups_by_stamp(&self) -> anyhow::Result<Vec<((String, u64), OsString)>> {
        let prefix = self.backup_prefix();
        let mut found = Vec::new();
        for name in self.entries()? {
            let Some(rest) = name.as_bytes().strip_prefix(prefix.as_slice()) else {
                continue;
            };
            let Ok(rest) = std::str::from_utf8(rest) else {
                continue;
            };
            let (stamp, n) = match rest.split_once('.') {
                Some((stamp, n)) => match n.parse::<u64>() {
                    Ok(n) => (stamp, n),
                    Err(_) => continue,
                },
                None => (rest, 0),
            };
            if stamp.len() != 16 || !stamp.ends_with('Z') {
                continue;
            }
            let regular = rustix::fs::statat(&self.dir, &name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile);
            if regular {
                found.push(((stamp.to_owned(), n), name));
            }
        }
        found.sort();
        Ok(found)
    }

    /// Existing backups, oldest stamp first.
    pub fn backups(&self) -> anyhow::Result<Vec<PathBuf>> {
        Ok(self
            .backups_by_stamp()?
            .into_iter()
            .map(|(_, name)| self.shown(&name))
            .collect())
    }
}

/// The target while this process holds its lock; dropping it releases the lock.
pub struct Locked<'a> {
    target: &'a Target,
    _lock: Flock<File>,
}

impl Locked<'_> {
    /// Removes temporary files a killed run left behind; nobody else can be writing them
    /// while we hold the lock. A link is removed itself, never followed.
    fn remove_stale_temporaries(&self) {
        let prefix = self.target.temp_prefix();
        if let Ok(names) = self.target.entries() {
            for name in names {
                if name.as_bytes().starts_with(&prefix) {
                    let _ = rustix::fs::unlinkat(&self.target.dir, &name, AtFlags::empty());
                }
            }
        }
    }

    /// Reads the file under the lock.
    pub fn read(&self) -> anyhow::Result<Vec<u8>> {
        self.target.read()
    }

    /// Replaces the file's bytes `old` (as just read under the lock) with `new`, keeping a
    /// backup and at most `keep_backups` of them (the new backup always among them).
    pub fn replace(&self, old: &[u8], new: &[u8], keep_backups: usize) -> anyhow::Result<Written> {
        let path = &self.target.path;
        let original = self
            .target
            .open(OFlags::RDONLY)
            .map_err(|e| open_error(path, e))?;
        let meta = original
            .metadata()
            .with_context(|| format!("cannot read hosts file {}", path.display()))?;
        let backup = self.write_backup(old, &meta)?;
        let result = self.write_new(old, new, &meta, &original);
        let method = match result {
            Ok(method) => method,
            Err(e) => {
                // With the original intact (or restored), the backup would only fill the disk.
                if self.target.read().is_ok_and(|now| now == old) {
                    let _ = rustix::fs::unlinkat(&self.target.dir, &backup, AtFlags::empty());
                }
                return Err(e);
            }
        };
        let pruned = self.prune(keep_backups, &backup)?;
        Ok(Written {
            backup: self.target.shown(&backup),
            method,
            pruned,
        })
    }

    /// Writes the backup; returns its name in the directory.
    fn write_backup(&self, old: &[u8], meta: &std::fs::Metadata) -> anyhow::Result<OsString> {
        let stamp = stg_core::timestamp::compact(stg_core::timestamp::now());
        let mut base = self.target.backup_prefix();
        base.extend_from_slice(stamp.as_bytes());
        for n in 0u32.. {
            let mut name = base.clone();
            if n > 0 {
                name.extend_from_slice(format!(".{n}").as_bytes());
            }
            let name = OsString::from(OsStr::from_bytes(&name));
            let shown = self.target.shown(&name);
            let mut file = match self.target.create_new(&name, meta.mode() & 0o7777) {
                Ok(file) => file,
                Err(Errno::EXIST) => continue,
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "cannot change {}: while creating the backup {}: {}",
                        self.target.path.display(),
                        shown.display(),
                        io(e)
                    ))
                }
            };
            let written = file.write_all(old).and_then(|()| file.sync_all());
            if let Err(e) = written {
                let _ = rustix::fs::unlinkat(&self.target.dir, &name, AtFlags::empty());
                return Err(anyhow::anyhow!(
                    "cannot change {}: while writing the backup {}: {e}",
                    self.target.path.display(),
                    shown.display()
                ));
            }
            return Ok(name);
        }
        unreachable!("u32 backup suffixes exhausted")
    }

    fn write_new(
        &self,
        old: &[u8],
        new: &[u8],
        meta: &std::fs::Metadata,
        original: &File,
    ) -> anyhow::Result<Method> {
        let target = self.target;
        let path = &target.path;
        let mut tmp = target.temp_prefix();
        tmp.extend_from_slice(std::process::id().to_string().as_bytes());
        let tmp = OsString::from(OsStr::from_bytes(&tmp));
        let tmp_shown = target.shown(&tmp);
        let prepared = target
            .create_new(&tmp, 0o600)
            .map_err(|e| anyhow::Error::from(io(e)))
            .and_then(|file| prepare_temp(file, new, meta, original));
        if let Err(e) = prepared {
            let _ = rustix::fs::unlinkat(&target.dir, &tmp, AtFlags::empty());
            return Err(e.context(format!(
                "cannot change {}: while writing the temporary file {}",
                path.display(),
                tmp_shown.display()
            )));
        }
        match rustix::fs::renameat(&target.dir, &tmp, &target.dir, &target.name) {
            Ok(()) => {
                // The rename is durable only once the directory is.
                rustix::fs::fsync(&target.dir)
                    .map_err(io)
                    .with_context(|| format!("while syncing {}", target.dir_shown.display()))?;
                Ok(Method::Rename)
            }
            Err(Errno::BUSY) => {
                let _ = rustix::fs::unlinkat(&target.dir, &tmp, AtFlags::empty());
                self.write_in_place(old, new)?;
                Ok(Method::InPlace)
            }
            Err(e) => {
                let _ = rustix::fs::unlinkat(&target.dir, &tmp, AtFlags::empty());
                Err(anyhow::anyhow!(
                    "cannot change {}: while renaming {} over it: {}",
                    path.display(),
                    tmp_shown.display(),
                    io(e)
                ))
            }
        }
    }

    /// Deletes the backups beyond the newest `keep`, never `just_made` (this run's, which
    /// counts as one of the `keep`). The others are ranked by the stamp in their names:
    /// one stamped later than this run's (a clock set wrong when it was made) is kept as
    /// the newest, with a warning, and can no longer push this run's backup out.
    fn prune(&self, keep: usize, just_made: &OsStr) -> anyhow::Result<Vec<PathBuf>> {
        let backups = self.target.backups_by_stamp()?;
        let made_key = backups
            .iter()
            .find(|(_, name)| name == just_made)
            .map(|(key, _)| key.clone());
        let others: Vec<((String, u64), OsString)> = backups
            .into_iter()
            .filter(|(_, name)| name != just_made)
            .collect();
        if let Some(made_key) = &made_key {
            for (key, name) in &others {
                if key.0 > made_key.0 {
                    eprintln!(
                        "stg-hosts: warning: backup {} is stamped later than now ({}): a clock was set wrong when it was made; it is kept as the newest",
                        stg_core::terminal::escape(&self.target.shown(name).display().to_string()),
                        made_key.0
                    );
                }
            }
        }
        let excess = others.len().saturating_sub(keep.saturating_sub(1));
        let mut pruned = Vec::new();
        for (_, name) in others.into_iter().take(excess) {
            let shown = self.target.shown(&name);
            rustix::fs::unlinkat(&self.target.dir, &name, AtFlags::empty())
                .map_err(io)
                .with_context(|| format!("while removing old backup {}", shown.display()))?;
            pruned.push(shown);
        }
        Ok(pruned)
    }

    /// Writes `new` over the file in place and reads it back; on failure writes `old` back.
    fn write_in_place(&self, old: &[u8], new: &[u8]) -> anyhow::Result<()> {
        let path = &self.target.path;
        let file = self.target.open(OFlags::WRONLY).map_err(|e| {
            anyhow::anyhow!(
                "cannot change {} (it cannot be renamed over: a mount point, so writing in place): {}",
                path.display(),
                io(e)
            )
        })?;
        let attempt = (|| -> std::io::Result<()> {
            file.write_all_at(new, 0)?;
            file.set_len(new.len() as u64)?;
            file.sync_all()?;
            if self.target.read().map_err(std::io::Error::other)? != new {
                return Err(std::io::Error::other(
                    "read back differs from what was written",
                ));
            }
            Ok(())
        })();
        if let Err(e) = attempt {
            // The old bytes fit where they were: put them back.
            let restored = file
                .write_all_at(old, 0)
                .and_then(|()| file.set_len(old.len() as u64))
                .and_then(|()| file.sync_all());
            return Err(match restored {
                Ok(()) => anyhow::anyhow!(
                    "cannot change {} in place: {e}; the original contents were written back",
                    path.display()
                ),
                Err(r) => anyhow::anyhow!(
                    "cannot change {} in place: {e}; writing the original back also failed ({r}): restore it from the backup",
                    path.display()
                ),
            });
        }
        Ok(())
    }
}

/// Writes `new` to the fresh temporary file with the original's mode, owner and SELinux
/// label.
fn prepare_temp(
    mut file: File,
    new: &[u8],
    meta: &std::fs::Metadata,
    original: &File,
) -> anyhow::Result<()> {
    file.write_all(new)?;
    if file.metadata()?.uid() != meta.uid() || file.metadata()?.gid() != meta.gid() {
        // Before chmod: chown clears set-id bits.
        std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
            .context("while giving it the original's owner")?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .context("while giving it the original's mode")?;
    copy_selinux_label(original, &file)?;
    file.sync_all()?;
    Ok(())
}

/// Copies `security.selinux` from the original, when it has one.
fn copy_selinux_label(from: &File, to: &File) -> anyhow::Result<()> {
    let mut buf = [0u8; 4096];
    let len = match rustix::fs::fgetxattr(from, SELINUX_XATTR, &mut buf[..]) {
        Ok(len) => len,
        // No label, or a file system / kernel without xattrs: nothing to keep.
        Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(std::io::Error::from(e)).context("while reading its SELinux label"),
    };
    rustix::fs::fsetxattr(
        to,
        SELINUX_XATTR,
        &buf[..len],
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(std::io::Error::from)
    .context("while copying the SELinux label")
}
