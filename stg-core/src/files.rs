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

use std::fs::File;
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
/// file as empty; `Unsuitable` (the input is wrong: a link, not a regular file, too large)
/// from `Refused` (the system said no: permissions, I/O errors), so callers can tell a bad
/// input from a runtime failure.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No such file.
    #[error("{0}: no such file")]
    NotFound(String),
    /// A symbolic link where none is followed, not a regular file, or larger than the bound.
    #[error("{0}")]
    Unsuitable(String),
    /// Opening or reading failed, with the reason.
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
            _ if e.raw_os_error() == Some(libc::ELOOP) && limits.no_symlink => {
                ReadError::Unsuitable(format!(
                    "{shown} is a symbolic link; it is not followed (name the file itself)"
                ))
            }
            _ => ReadError::Refused(format!("cannot read {shown}: {e}")),
        })?;
    read_opened(file, &shown, limits.max_bytes)
}

/// Reads a file the caller opened (with `O_NONBLOCK`, and `O_NOFOLLOW` where links are
/// refused: see [`read_small`]): refuses anything but a regular file, checked on the open
/// descriptor, and more than `max_bytes`; `shown` names it in errors.
pub fn read_opened(file: File, shown: &str, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
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
        return Err(ReadError::Unsuitable(format!(
            "{shown} is {what}; only a regular file is read"
        )));
    }
    if meta.len() > max_bytes {
        return Err(ReadError::Unsuitable(format!(
            "{shown} is {} bytes; at most {max_bytes} are read",
            meta.len(),
        )));
    }
    let bytes = read_stream(file, shown, max_bytes)?;
    Ok(bytes)
}

/// Reads a stream (stdin, a pipe) to its end, but never more than `max_bytes`: past that
/// it stops and refuses, so `/dev/zero` behind it costs at most the bound.
pub fn read_stream(reader: impl Read, shown: &str, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    reader
        .take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Refused(format!("cannot read {shown}: {e}")))?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadError::Unsuitable(format!(
            "{shown} holds more than {max_bytes} bytes; at most {max_bytes} are read"
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
        // What is wrong with the input is told apart from what the system refused.
        assert!(matches!(
            read_small(&fifo, SMALL),
            Err(ReadError::Unsuitable(_))
        ));
        assert!(matches!(
            read_small(&link, SMALL),
            Err(ReadError::Unsuitable(_))
        ));
    }

    #[test]
    fn streams_are_read_up_to_the_bound() {
        let zero = std::fs::File::open("/dev/zero").unwrap();
        let err = read_stream(zero, "<stdin>", 1 << 20).unwrap_err();
        assert!(matches!(err, ReadError::Unsuitable(_)), "{err}");
        assert!(err.to_string().contains("more than 1048576 bytes"), "{err}");
        assert_eq!(
            read_stream(&b"hello"[..], "<stdin>", 5).unwrap(),
            b"hello".to_vec()
        );
    }
}
