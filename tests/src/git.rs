//! Temporary git repositories with fixed commit dates, so ages computed from them are
//! reproducible.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A git repository in a temporary directory, removed on drop.
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// `git init` with a fixed identity and branch `main`.
    #[must_use]
    pub fn new() -> Repo {
        if Command::new("git").arg("--version").output().is_err() {
            crate::require("git", "git");
        }
        let dir = tempfile::Builder::new()
            .prefix("stg-git-")
            .tempdir()
            .expect("temp dir");
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Test Author"]);
        repo.git(&["config", "user.email", "author@example.org"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo
    }

    /// The work tree.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating folders), relative to the work tree.
    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// Runs git in the repository with pinned dates and identity; panics on failure;
    /// returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        self.git_at(args, "2020-01-01T00:00:00Z", "Test Author")
    }

    /// Runs git with a given commit date and author name.
    pub fn git_at(&self, args: &[&str], date: &str, author: &str) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date)
            .env("GIT_AUTHOR_NAME", author)
            .env("GIT_COMMITTER_NAME", author)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.path())
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stages everything and commits at `date` (RFC 3339); returns the commit id.
    pub fn commit(&self, message: &str, date: &str) -> String {
        self.commit_by(message, date, "Test Author")
    }

    /// Stages everything and commits at `date` as `author`; returns the commit id.
    pub fn commit_by(&self, message: &str, date: &str, author: &str) -> String {
        self.git_at(&["add", "-A"], date, author);
        self.git_at(
            &["commit", "-q", "--allow-empty", "-m", message],
            date,
            author,
        );
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }
}

impl Default for Repo {
    fn default() -> Self {
        Self::new()
    }
}
