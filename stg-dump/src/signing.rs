//! `--signing-key`: signing the stream's parts ([`stg_core::signed`]) with an OpenSSH
//! Ed25519 key, as `ssh-keygen -Y sign -n stg-stream` would.
//!
//! The key is a private key file (unencrypted, readable by its owner only, as ssh wants
//! it), or a public key file whose private half ssh-agent holds (`SSH_AUTH_SOCK`), as
//! git's `user.signingKey` takes either. An encrypted private key is refused with a hint
//! to load it into ssh-agent: stg-dump runs from cron and asks no one for a passphrase.
//!
//! Not here: where parts begin and end (the pipeline, [`crate::pipeline`]), checking
//! signatures (stg-restore).
//! See: OpenSSH's PROTOCOL.sshsig and PROTOCOL.agent (`SSH_AGENTC_SIGN_REQUEST`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use stg_core::signed::{self, Part, Signature, NAMESPACE};
use stg_core::Error;

/// The hash the signatures use (ssh-keygen's default).
const HASH: HashAlg = HashAlg::Sha512;

/// Where the private half is.
enum Key {
    /// In the key file.
    File(Box<PrivateKey>),
    /// In ssh-agent, at this socket.
    Agent { public: PublicKey, socket: PathBuf },
}

/// Signs a stream's parts as they are written.
pub struct Signer {
    key: Key,
    /// The stream's name in the signed messages (set by [`Signer::start`]).
    stream: String,
    part: Part,
    index: u64,
    part_size: u64,
}

impl Signer {
    /// Reads the key at `path`; parts of about `part_size` bytes.
    pub fn open(path: &Path, part_size: u64) -> anyhow::Result<Signer> {
        let limits = stg_core::files::Limits {
            max_bytes: 64 * 1024,
            no_symlink: false,
        };
        let bytes = stg_core::files::read_small(path, limits)
            .map_err(|e| Error::usage(format!("cannot read the signing key: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::usage(format!("{}: not an OpenSSH key file", path.display())))?;
        let key = if text
            .trim_start()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        {
            let mode = std::fs::metadata(path).map_or(0, |m| {
                std::os::unix::fs::PermissionsExt::mode(&m.permissions())
            });
            if mode & 0o077 != 0 {
                return Err(Error::usage(format!(
                    "the signing key {} can be read or written by others (mode {:o}); as ssh \
                     does, stg-dump uses a private key only when its owner alone can \
                     (chmod 600)",
                    path.display(),
                    mode & 0o777
                ))
                .into());
            }
            let private = PrivateKey::from_openssh(&text).map_err(|e| {
                Error::usage(format!(
                    "{}: not an OpenSSH private key ({e})",
                    path.display()
                ))
            })?;
            if private.is_encrypted() {
                return Err(Error::usage(format!(
                    "the signing key {} is encrypted with a passphrase: load it into ssh-agent \
                     (ssh-add {}) and give its public key (--signing-key {}.pub)",
                    path.display(),
                    path.display(),
                    path.display()
                ))
                .into());
            }
            Key::File(Box::new(private))
        } else {
            let public = PublicKey::from_openssh(text.trim()).map_err(|e| {
                Error::usage(format!(
                    "{}: neither an OpenSSH private key nor a public key ({e})",
                    path.display()
                ))
            })?;
            let socket = std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "--signing-key {} is a public key, and SSH_AUTH_SOCK names no ssh-agent \
                         to sign with its private half",
                        path.display()
                    ))
                })?;
            Key::Agent { public, socket }
        };
        let algorithm = match &key {
            Key::File(k) => k.algorithm(),
            Key::Agent { public, .. } => public.algorithm(),
        };
        if algorithm != Algorithm::Ed25519 {
            return Err(Error::usage(format!(
                "the signing key {} is {}; streams are signed with Ed25519 keys (ssh-keygen -t \
                 ed25519)",
                path.display(),
                algorithm.as_str()
            ))
            .into());
        }
        Ok(Signer {
            key,
            stream: String::new(),
            part: Part::new(),
            index: 0,
            part_size: part_size.max(1),
        })
    }

    /// The key's fingerprint (`SHA256:...`), for messages.
    pub fn fingerprint(&self) -> String {
        match &self.key {
            Key::File(k) => k.fingerprint(HASH_FINGERPRINT).to_string(),
            Key::Agent { public, .. } => public.fingerprint(HASH_FINGERPRINT).to_string(),
        }
    }

    /// The stream starts with `manifest_line`: its name in every signed message. Returns
    /// the signature line of part 0 (the manifest line itself, whose SHA-256 is the
    /// stream's name).
    pub fn start(&mut self, manifest_line: &[u8]) -> anyhow::Result<String> {
        self.stream = signed::stream_id(manifest_line);
        self.part.update(manifest_line);
        let so_far = self.stream.clone();
        self.sign(false, so_far)
    }

    /// Adds written bytes to the part.
    pub fn update(&mut self, bytes: &[u8]) {
        self.part.update(bytes);
    }

    /// True when the part is long enough to end at the next place one may end.
    pub fn due(&self) -> bool {
        self.part.len() >= self.part_size
    }

    /// Ends the part and returns its signature line (`last`: the stream's last part);
    /// `sha256` is the SHA-256 (hex) of every byte of the stream written before this
    /// signature line ([`stg_core::stream::Tally::sha256_so_far`]).
    pub fn sign(&mut self, last: bool, sha256: String) -> anyhow::Result<String> {
        let bytes = self.part.finish();
        let mut sig = Signature {
            part: self.index,
            last,
            bytes,
            sha256,
            sshsig: String::new(),
        };
        let message = signed::message(&self.stream, &sig);
        let sshsig = match &self.key {
            Key::File(k) => k
                .sign(NAMESPACE, HASH, &message)
                .context("while signing a part of the stream")?,
            Key::Agent { public, socket } => agent_sign(socket, public, &message)?,
        };
        let pem = sshsig
            .to_pem(LineEnding::LF)
            .context("while encoding a signature")?;
        sig.sshsig = signed::unarmored(&pem);
        self.index += 1;
        Ok(signed::line(&sig))
    }
}

/// Fingerprints as ssh-keygen -l shows them.
const HASH_FINGERPRINT: HashAlg = HashAlg::Sha256;

/// Asks ssh-agent at `socket` to sign `message` with `public`'s private half, as an
/// `SSHSIG` in the stream namespace.
fn agent_sign(socket: &Path, public: &PublicKey, message: &[u8]) -> anyhow::Result<SshSig> {
    let signed_data =
        SshSig::signed_data(NAMESPACE, HASH, message).context("while preparing a signature")?;
    let ssh_key::public::KeyData::Ed25519(key) = public.key_data() else {
        anyhow::bail!("the signing key is not an Ed25519 key");
    };
    let fail = |what: &str| {
        anyhow::Error::from(Error::runtime(format!(
            "ssh-agent at {} {what}",
            socket.display()
        )))
    };
    let mut stream =
        UnixStream::connect(socket).map_err(|e| fail(&format!("cannot be reached: {e}")))?;
    // SSH2_AGENTC_SIGN_REQUEST: string key blob, string data, uint32 flags.
    let mut blob = Vec::new();
    put_string(&mut blob, b"ssh-ed25519");
    put_string(&mut blob, key.as_ref());
    let mut body = vec![13u8];
    put_string(&mut body, &blob);
    put_string(&mut body, &signed_data);
    body.extend_from_slice(&0u32.to_be_bytes());
    let mut request = Vec::with_capacity(body.len() + 4);
    request.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    request.extend_from_slice(&body);
    stream
        .write_all(&request)
        .map_err(|e| fail(&format!("could not be asked to sign: {e}")))?;
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .map_err(|e| fail(&format!("did not answer: {e}")))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 64 * 1024 {
        return Err(fail("answered with an oversized message"));
    }
    let mut reply = vec![0u8; len];
    stream
        .read_exact(&mut reply)
        .map_err(|e| fail(&format!("did not answer: {e}")))?;
    // SSH2_AGENT_SIGN_RESPONSE (14): string signature = string "ssh-ed25519", string sig.
    if reply.first() != Some(&14) {
        return Err(fail(&format!(
            "refused to sign (it does not hold the private key of {}? ssh-add it)",
            public.fingerprint(HASH_FINGERPRINT)
        )));
    }
    let mut rest = &reply[1..];
    let outer = take_string(&mut rest).ok_or_else(|| fail("sent a malformed signature"))?;
    let mut inner = outer;
    let algorithm = take_string(&mut inner).ok_or_else(|| fail("sent a malformed signature"))?;
    let bytes = take_string(&mut inner).ok_or_else(|| fail("sent a malformed signature"))?;
    if algorithm != b"ssh-ed25519" {
        return Err(fail("signed with another algorithm than Ed25519"));
    }
    let signature = ssh_key::Signature::new(Algorithm::Ed25519, bytes.to_vec())
        .map_err(|e| fail(&format!("sent a signature that is not Ed25519's ({e})")))?;
    SshSig::new(public.key_data().clone(), NAMESPACE, HASH, signature)
        .context("while assembling a signature")
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn take_string<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_be_bytes(input.get(..4)?.try_into().ok()?) as usize;
    let s = input.get(4..4 + len)?;
    *input = &input[4 + len..];
    Some(s)
}
