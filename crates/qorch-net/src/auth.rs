//! Frames authenticated under a deployment key ([`FrameKey`]).
//!
//! NATS credentials say who may connect and, with the server's permissions, who may publish
//! where; they do not say that a frame under `<prefix>` comes from a process of this run.
//! With a key, every frame a run exchanges (control calls and their answers, join
//! announcements, heartbeats, and the gateway's data frames and acknowledgements) carries an
//! HMAC-SHA256 tag over its subject and bytes:
//!
//! ```text
//! sealed = frame || HMAC-SHA256(key, "qorch-ctl-v1" 0x00 subject 0x00 frame)   (32 bytes)
//! ```
//!
//! A receiver checks the tag (in constant time) before decoding anything; a frame without a
//! valid tag is refused, counted ([`Connection::refused_frames`](crate::Connection::refused_frames))
//! and logged (the first refusal and then every power of two, so a flood does not flood the
//! log). The subject is covered, so a frame cannot be replayed on another subject (another
//! node's calls, another process's heartbeats, another cluster's data); a frame replayed on its own subject within
//! the key's life is not detected (see `docs/security.md`). Without a key, frames travel
//! unauthenticated, as they did before (tests, trusted networks).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::NetError;

/// Bytes of the tag appended to a sealed frame.
pub const TAG_BYTES: usize = 32;

/// The shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// The longest key file read, in bytes (a key is a line of text).
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// What the tag covers before the subject: a version, so that another use of the same key
/// can never produce a valid control tag.
const DOMAIN: &[u8] = b"qorch-ctl-v1\0";

type HmacSha256 = Hmac<Sha256>;

/// The deployment key every process of a run shares. Never printed (`Debug` shows
/// `<redacted>`); read from a file or the environment, never from the command line.
#[derive(Clone, PartialEq, Eq)]
pub struct FrameKey(Arc<str>);

impl fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FrameKey(<redacted>)")
    }
}

impl FrameKey {
    /// A key from its text (surrounding whitespace ignored).
    ///
    /// # Errors
    ///
    /// [`NetError::Config`] for a key shorter than [`MIN_KEY_BYTES`] (the message does not
    /// quote it).
    pub fn new(text: &str) -> Result<FrameKey, NetError> {
        let text = text.trim();
        if text.len() < MIN_KEY_BYTES {
            return Err(NetError::Config(format!(
                "the deployment key has {} bytes; it needs at least {MIN_KEY_BYTES} \
                 (for instance 64 hex digits: `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'`)",
                text.len()
            )));
        }
        Ok(FrameKey(text.into()))
    }

    /// The key held by a file (its first [`MAX_KEY_FILE_BYTES`] bytes at most).
    ///
    /// # Errors
    ///
    /// [`NetError::ConfigFile`] if it cannot be read, [`NetError::Config`] if it is too
    /// long, not UTF-8 or too short.
    pub fn from_file(path: &Path) -> Result<FrameKey, NetError> {
        use std::io::Read as _;
        let file_error = |source| NetError::ConfigFile {
            what: "deployment key file",
            path: path.display().to_string(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(file_error)?
            .take(MAX_KEY_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(file_error)?;
        if text.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(NetError::Config(format!(
                "{} is longer than a key ({MAX_KEY_FILE_BYTES} bytes at most)",
                path.display()
            )));
        }
        FrameKey::new(&text)
    }

    /// A fresh random key (32 bytes from the operating system, as 64 hex digits), for a
    /// run whose processes all start here.
    ///
    /// # Errors
    ///
    /// [`NetError::Config`] if the system's random source cannot be read.
    pub fn generate() -> Result<FrameKey, NetError> {
        use std::fmt::Write as _;
        use std::io::Read as _;
        let mut bytes = [0_u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|e| NetError::Config(format!("cannot read /dev/urandom for a key: {e}")))?;
        let mut text = String::with_capacity(64);
        for b in bytes {
            let _ = write!(text, "{b:02x}");
        }
        FrameKey::new(&text)
    }

    /// The key's text, to hand to a child process through its environment (never its
    /// arguments).
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn mac(&self, subject: &str, frame: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(self.0.as_bytes()).expect("HMAC takes keys of any length");
        mac.update(DOMAIN);
        mac.update(subject.as_bytes());
        mac.update(&[0]);
        mac.update(frame);
        mac
    }

    /// `frame` with its tag for `subject` appended.
    pub fn seal(&self, subject: &str, mut frame: Vec<u8>) -> Vec<u8> {
        let tag = self.mac(subject, &frame).finalize().into_bytes();
        frame.extend_from_slice(&tag);
        frame
    }

    /// The frame inside `sealed` if its tag is valid for `subject` (checked in constant
    /// time), `None` otherwise.
    pub fn open<'a>(&self, subject: &str, sealed: &'a [u8]) -> Option<&'a [u8]> {
        let cut = sealed.len().checked_sub(TAG_BYTES)?;
        let (frame, tag) = sealed.split_at(cut);
        self.mac(subject, frame).verify_slice(tag).ok()?;
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FrameKey {
        FrameKey::new("0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn sealed_frames_open_only_with_the_key_on_their_subject() {
        let k = key();
        let sealed = k.seal("q.ctl.node.a", b"frame".to_vec());
        assert_eq!(k.open("q.ctl.node.a", &sealed), Some(&b"frame"[..]));
        // Another subject, another key, a flipped bit, a cut tag: refused.
        assert_eq!(k.open("q.ctl.node.b", &sealed), None);
        let other = FrameKey::new("fedcba9876543210fedcba9876543210").unwrap();
        assert_eq!(other.open("q.ctl.node.a", &sealed), None);
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(
                k.open("q.ctl.node.a", &bad),
                None,
                "bit flipped in byte {i}"
            );
        }
        assert_eq!(k.open("q.ctl.node.a", &sealed[..sealed.len() - 1]), None);
        assert_eq!(k.open("q.ctl.node.a", b"short"), None);
        assert_eq!(k.open("q.ctl.node.a", b""), None);
    }

    #[test]
    fn keys_are_never_shown_and_short_ones_are_refused() {
        assert_eq!(format!("{:?}", key()), "FrameKey(<redacted>)");
        let err = FrameKey::new("  short-secret ").unwrap_err().to_string();
        assert!(err.contains("at least 16"), "{err}");
        assert!(!err.contains("short-secret"), "{err}");
        let a = FrameKey::generate().unwrap();
        let b = FrameKey::generate().unwrap();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn key_files_are_read_with_a_bound() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, "0123456789abcdef0123456789abcdef\n").unwrap();
        assert_eq!(FrameKey::from_file(&p).unwrap(), key());
        std::fs::write(&p, vec![b'a'; 10_000]).unwrap();
        assert!(FrameKey::from_file(&p).is_err());
        assert!(FrameKey::from_file(&dir.path().join("missing")).is_err());
    }
}
