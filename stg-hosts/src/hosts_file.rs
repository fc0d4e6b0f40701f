//! Reading and replacing a hosts file without ever losing it.
//!
//! A change is made under an exclusive `flock` on `<file>.stg-lock` beside the file (the
//! file itself is replaced by rename, so it cannot carry the lock), after re-reading the
//! file under that lock. The old bytes are first copied to `<file>.stg-bak.<UTC stamp>`;
//! the new bytes go to a temporary file in the same directory, which gets the original's
//! mode, owner and SELinux label (`security.selinux`), is fsynced and renamed over the
//! original, and the directory is fsynced. When the rename fails with `EBUSY` (a
//! bind-mounted `/etc/hosts` in a container), the file is written in place and read back;
//! if that fails the original bytes are written back. Old backups beyond `--keep-backups`
//! are deleted after a successful change; temporary files left by a killed run are removed
//! under the lock.
//!
//! Not for deciding what to write (see [`crate::hosts_block`]).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};
use stg_core::Error;

const SELINUX_XATTR: &str = "security.selinux";

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

/// A hosts file named on the command line, symlinks resolved (so a symlinked `/etc/hosts`
/// is changed where it really lives).
#[derive(Clone, Debug)]
pub struct Target {
    path: PathBuf,
    dir: PathBuf,
    file_name: String,
}

/// Classifies an error opening the hosts file: a missing file is the user's bad input.
fn open_error(path: &Path, e: &std::io::Error) -> anyhow::Error {
    if e.kind() == ErrorKind::NotFound {
        Error::usage(format!("hosts file {} does not exist", path.display())).into()
    } else {
        anyhow::anyhow!("cannot read hosts file {}: {e}", path.display())
    }
}

impl Target {
    /// Resolves the path; a missing file is a usage error.
    pub fn new(path: &Path) -> anyhow::Result<Target> {
        let real = fs::canonicalize(path).map_err(|e| open_error(path, &e))?;
        let dir = real
            .parent()
            .context("the hosts file has no parent directory")?
            .to_path_buf();
        let file_name = real
            .file_name()
            .context("the hosts file has no file name")?
            .to_string_lossy()
            .into_owned();
        Ok(Target {
            path: real,
            dir,
            file_name,
        })
    }

    /// The resolved path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file.
    pub fn read(&self) -> anyhow::Result<Vec<u8>> {
        fs::read(&self.path).map_err(|e| open_error(&self.path, &e))
    }

    /// The lock file beside the target.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(format!("{}.stg-lock", self.file_name))
    }

    /// Takes the exclusive lock (waiting for another stg-hosts to finish).
    pub fn lock(&self) -> anyhow::Result<Locked<'_>> {
        let lock_path = self.lock_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| {
                format!(
                    "cannot change {}: while creating the lock file {}",
                    self.path.display(),
                    lock_path.display()
                )
            })?;
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

    fn temp_prefix(&self) -> String {
        format!(".{}.stg-tmp.", self.file_name)
    }

    fn backup_prefix(&self) -> String {
        format!("{}.stg-bak.", self.file_name)
    }

    /// Existing backups, oldest first.
    pub fn backups(&self) -> anyhow::Result<Vec<PathBuf>> {
        let prefix = self.backup_prefix();
        let mut found: Vec<((String, u64), PathBuf)> = Vec::new();
        for entry in fs::read_dir(&self.dir)
            .with_context(|| format!("while listing {}", self.dir.display()))?
        {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            let (stamp, n) = match rest.split_once('.') {
                Some((stamp, n)) => match n.parse::<u64>() {
                    Ok(n) => (stamp, n),
                    Err(_) => continue,
                },
                None => (rest, 0),
            };
            if stamp.len() == 16 && stamp.ends_with('Z') {
                found.push(((stamp.to_owned(), n), entry.path()));
            }
        }
        found.sort();
        Ok(found.into_iter().map(|(_, p)| p).collect())
    }
}

/// The target while this process holds its lock; dropping it releases the lock.
pub struct Locked<'a> {
    target: &'a Target,
    _lock: Flock<File>,
}

impl Locked<'_> {
    /// Removes temporary files a killed run left behind; nobody else can be writing them
    /// while we hold the lock.
    fn remove_stale_temporaries(&self) {
        let prefix = self.target.temp_prefix();
        if let Ok(entries) = fs::read_dir(&self.target.dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }

    /// Reads the file under the lock.
    pub fn read(&self) -> anyhow::Result<Vec<u8>> {
        self.target.read()
    }

    /// Replaces the file's bytes `old` (as just read under the lock) with `new`, keeping a
    /// backup and at most `keep_backups` of them.
    pub fn replace(&self, old: &[u8], new: &[u8], keep_backups: usize) -> anyhow::Result<Written> {
        let path = &self.target.path;
        let meta = fs::metadata(path).map_err(|e| open_error(path, &e))?;
        let backup = self.write_backup(old, &meta)?;
        let result = self.write_new(old, new, &meta);
        let method = match result {
            Ok(method) => method,
            Err(e) => {
                // With the original intact (or restored), the backup would only fill the disk.
                if fs::read(path).is_ok_and(|now| now == old) {
                    let _ = fs::remove_file(&backup);
                }
                return Err(e);
            }
        };
        let pruned = self.prune(keep_backups)?;
        Ok(Written {
            backup,
            method,
            pruned,
        })
    }

    fn write_backup(&self, old: &[u8], meta: &fs::Metadata) -> anyhow::Result<PathBuf> {
        let stamp = stg_core::timestamp::compact(stg_core::timestamp::now());
        let base = format!("{}{stamp}", self.target.backup_prefix());
        for n in 0u32.. {
            let name = if n == 0 {
                base.clone()
            } else {
                format!("{base}.{n}")
            };
            let path = self.target.dir.join(name);
            let mut file = match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(meta.mode() & 0o7777)
                .open(&path)
            {
                Ok(file) => file,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "cannot change {}: while creating the backup {}: {e}",
                        self.target.path.display(),
                        path.display()
                    ))
                }
            };
            let written = file.write_all(old).and_then(|()| file.sync_all());
            if let Err(e) = written {
                let _ = fs::remove_file(&path);
                return Err(anyhow::anyhow!(
                    "cannot change {}: while writing the backup {}: {e}",
                    self.target.path.display(),
                    path.display()
                ));
            }
            return Ok(path);
        }
        unreachable!("u32 backup suffixes exhausted")
    }

    fn write_new(&self, old: &[u8], new: &[u8], meta: &fs::Metadata) -> anyhow::Result<Method> {
        let path = &self.target.path;
        let tmp = self.target.dir.join(format!(
            "{}{}",
            self.target.temp_prefix(),
            std::process::id()
        ));
        let prepared = prepare_temp(&tmp, new, meta, path);
        if let Err(e) = prepared {
            let _ = fs::remove_file(&tmp);
            return Err(e.context(format!(
                "cannot change {}: while writing the temporary file {}",
                path.display(),
                tmp.display()
            )));
        }
        match fs::rename(&tmp, path) {
            Ok(()) => {
                // The rename is durable only once the directory is.
                File::open(&self.target.dir)
                    .and_then(|d| d.sync_all())
                    .with_context(|| format!("while syncing {}", self.target.dir.display()))?;
                Ok(Method::Rename)
            }
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EBUSY as i32) => {
                let _ = fs::remove_file(&tmp);
                write_in_place(path, old, new)?;
                Ok(Method::InPlace)
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(anyhow::anyhow!(
                    "cannot change {}: while renaming {} over it: {e}",
                    path.display(),
                    tmp.display()
                ))
            }
        }
    }

    fn prune(&self, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
        let backups = self.target.backups()?;
        let excess = backups.len().saturating_sub(keep);
        let mut pruned = Vec::new();
        for old in backups.into_iter().take(excess) {
            fs::remove_file(&old)
                .with_context(|| format!("while removing old backup {}", old.display()))?;
            pruned.push(old);
        }
        Ok(pruned)
    }
}

/// Writes `new` to a fresh temporary file with the original's mode, owner and SELinux label.
fn prepare_temp(
    tmp: &Path,
    new: &[u8],
    meta: &fs::Metadata,
    original: &Path,
) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    file.write_all(new)?;
    if file.metadata()?.uid() != meta.uid() || file.metadata()?.gid() != meta.gid() {
        // Before chmod: chown clears set-id bits.
        std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
            .context("while giving it the original's owner")?;
    }
    file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
        .context("while giving it the original's mode")?;
    copy_selinux_label(original, &file)?;
    file.sync_all()?;
    Ok(())
}

/// Copies `security.selinux` from the original, when it has one.
fn copy_selinux_label(original: &Path, to: &File) -> anyhow::Result<()> {
    let from = File::open(original)?;
    let mut buf = [0u8; 4096];
    let len = match rustix::fs::fgetxattr(&from, SELINUX_XATTR, &mut buf[..]) {
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

/// Writes `new` over the file in place and reads it back; on failure writes `old` back.
fn write_in_place(path: &Path, old: &[u8], new: &[u8]) -> anyhow::Result<()> {
    let file = OpenOptions::new().write(true).open(path).with_context(|| {
        format!(
            "cannot change {} (it cannot be renamed over: a mount point, so writing in place)",
            path.display()
        )
    })?;
    let attempt = (|| -> std::io::Result<()> {
        file.write_all_at(new, 0)?;
        file.set_len(new.len() as u64)?;
        file.sync_all()?;
        if fs::read(path)? != new {
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
