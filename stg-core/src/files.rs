//! Reading a small input file (an ignore file, a key file, an inventory) the way a tool run
//! by root from cron must: only a regular file, never through a symbolic link where the
//! caller says so, never more than a bound, and never hanging on a FIFO or a device.
//!
//! `open` uses `O_NONBLOCK` (a FIFO without a writer would block `open` itself; the flag
//! is cleared by the kernel's meaning for regular files, which ignore it) and, when asked,
//! `O_NOFOLLOW`; the type is checked on the open descriptor (`fstat`), so what was checked is
//! what is read. The read stops one byte past the bound, so a huge file or `/dev/zero`
//! behind a name costs at most the bound in memory.
//! See: open(2), `O_NOFOLLOW` and `O_NONBLOCK`.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// How a small file may be read.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most bytes accepted.
    pub max_bytes: u64,
    /// Refuse a path whose last component is a symbolic link.
    pub no_symlink: bool,
}

/// Why a file was not read. `NotFound` is separate so callers can treat a missing optional
/// file as empty.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No such file.
    #[error("{0}: no such file")]
    NotFound(String),
    /// Anything else, with the reason.
    #[error("{0}")]
    Refused(String),
}

/// Reads `path` within `limits`; the error names the path and the reason.
pub fn read_small(path: &Path, limits: Limits) -> Result<Vec<u8>, ReadError> {
    let shown = path.display().to_string();
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if limits.no_symlink {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound(shown.clone()),
            // O_NOFOLLOW on a link fails with ELOOP.
            _ if e.raw_os_error() == Some(libc::ELOOP) && limits.no_symlink => ReadError::Refused(
                format!("{shown} is a symbolic link; it is not followed (name the file itself)"),
            ),
            _ => ReadError::Refused(format!("cannot read {shown}: {e}")),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| ReadError::Refused(format!("cannot read {shown}: {e}")))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(ReadError::Refused(format!(
            "{shown} is {what}; only a regular file is read"
        )));
    }
    if meta.len() > limits.max_bytes {
        return Err(ReadError::Refused(format!(
            "{shown} is {} bytes; at most {} are read",
            meta.len(),
            limits.max_bytes
        )));
    }
    let mut bytes = Vec::new();
    file.take(limits.max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Refused(format!("cannot read {shown}: {e}")))?;
    if bytes.len() as u64 > limits.max_bytes {
        return Err(ReadError::Refused(format!(
            "{shown} grew past {} bytes while being read",
            limits.max_bytes
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        max_bytes: 16,
        no_symlink: true,
    };

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"hello").unwrap();
        assert_eq!(read_small(&file, SMALL).unwrap(), b"hello");

        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let err = read_small(&link, SMALL).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        let follow = Limits {
            no_symlink: false,
            ..SMALL
        };
        assert_eq!(read_small(&link, follow).unwrap(), b"hello");

        std::fs::write(&file, [b'x'; 17]).unwrap();
        assert!(read_small(&file, SMALL)
            .unwrap_err()
            .to_string()
            .contains("at most 16"));

        let fifo = dir.path().join("p");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(read_small(&fifo, SMALL)
            .unwrap_err()
            .to_string()
            .contains("FIFO"));
        assert!(read_small(Path::new("/dev/zero"), follow)
            .unwrap_err()
            .to_string()
            .contains("device"));
        assert!(read_small(dir.path(), SMALL)
            .unwrap_err()
            .to_string()
            .contains("directory"));
        assert!(matches!(
            read_small(&dir.path().join("missing"), SMALL),
            Err(ReadError::NotFound(_))
        ));
    }
}
