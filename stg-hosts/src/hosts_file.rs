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

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use stg_core::Error;

use crate::resolve;
pub use crate::resolve::Resolve;

const SELINUX_XATTR: &str = "security.selinux";

/// The largest hosts file read: 16 MiB, thousands of times a real one (a big ad-blocking
/// hosts file is a few MiB). A larger file is refused, not read.
pub const MAX_HOSTS_BYTES: u64 = 16 << 20;

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
pub(crate) fn quoted(path: &Path) -> std::borrow::Cow<'_, str> {
    stg_core::terminal::escape_bytes(path.as_os_str().as_bytes())
}

pub(crate) fn io(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
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

impl Target {
    /// Resolves `path` as `how` says (see the module documentation); a missing file is a
    /// usage error when it is read, a link that may not be followed one now.
    pub fn new(path: &Path, how: &Resolve) -> anyhow::Result<Target> {
        let found = resolve::find(path, how)?;
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
