//! Resolving the hosts file's path without being led anywhere else by a symbolic link: one
//! component at a time from directory descriptors, as the module documentation of
//! [`crate::hosts_file`] describes. [`find`] returns the directory that really holds the file
//! (kept open) and the file's name there; everything later works on that descriptor.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use stg_core::Error;

use crate::hosts_file::{io, quoted};

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
pub(crate) struct Found {
    pub(crate) dir: OwnedFd,
    pub(crate) dir_shown: PathBuf,
    pub(crate) name: Option<OsString>,
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

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .context("while finding the current directory")?
            .join(path))
    }
}

/// Resolves `path` as `how` says: the directory holding the file and the file's name in it.
pub(crate) fn find(path: &Path, how: &Resolve) -> anyhow::Result<Found> {
    if let Some(root) = &how.root {
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
        .run(&anchor, path, false)
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
        .run(&dir.dir, Path::new(name), false)
    }
}
