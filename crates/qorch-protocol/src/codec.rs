//! The wire codec: how envelopes (or any serde value) travel between processes.
//!
//! A frame is `[version: u8] [bincode 2 payload] [crc32 of the previous bytes: u32 LE]`.
//! The payload uses bincode's standard configuration (little-endian, variable-length
//! integers). Decoding checks, in this order: length, version, checksum, payload, and that the
//! payload used every byte; each failure has its own [`DecodeError`] variant. Decoding never
//! panics and never allocates more than the frame's size limit, whatever the input.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version byte written at the start of every frame.
pub const WIRE_VERSION: u8 = 1;

/// Bytes of framing around the payload: the version byte and the checksum.
pub const FRAME_OVERHEAD: usize = 1 + 4;

/// Hard ceiling on a frame, whatever the codec's configured limit (bincode needs it at compile
/// time to bound allocations while decoding).
pub const MAX_FRAME_BYTES: usize = 64 << 20;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME_BYTES>,
>;

const CONFIG: Config = bincode::config::standard().with_limit::<MAX_FRAME_BYTES>();

/// Encodes and decodes frames.
///
/// # Examples
///
/// ```
/// use qorch_protocol::{Address, AgentId, Envelope, WireCodec};
///
/// let codec = WireCodec::default();
/// let env = Envelope::new(Address::Agent(AgentId(1)), Address::Orchestrator, 1, 42_u64);
/// let bytes = codec.encode(&env).unwrap();
/// let back: Envelope<u64> = codec.decode(&bytes).unwrap();
/// assert_eq!(back, env);
///
/// // A flipped bit is caught, not decoded into a wrong message.
/// let mut bad = bytes.clone();
/// bad[3] ^= 0x10;
/// assert!(codec.decode::<Envelope<u64>>(&bad).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireCodec {
    max_frame_bytes: usize,
}

impl Default for WireCodec {
    fn default() -> Self {
        WireCodec {
            max_frame_bytes: MAX_FRAME_BYTES,
        }
    }
}

impl WireCodec {
    /// A codec that refuses frames longer than `max_frame_bytes` (capped at
    /// [`MAX_FRAME_BYTES`]).
    pub fn with_max_frame_bytes(max_frame_bytes: usize) -> Self {
        WireCodec {
            max_frame_bytes: max_frame_bytes.min(MAX_FRAME_BYTES),
        }
    }

    /// The largest frame this codec encodes or decodes.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Encodes `value` as one frame.
    ///
    /// # Errors
    ///
    /// [`EncodeError::Serialize`] if serde fails, [`EncodeError::TooLarge`] if the frame would
    /// exceed the limit.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, EncodeError> {
        let mut buf = Vec::with_capacity(64);
        self.encode_into(value, &mut buf)?;
        Ok(buf)
    }

    /// Appends one frame for `value` to `buf` (which may already hold earlier frames).
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode); on error `buf` is left as it was.
    pub fn encode_into<T: Serialize + ?Sized>(
        &self,
        value: &T,
        buf: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let start = buf.len();
        buf.push(WIRE_VERSION);
        if let Err(e) = bincode::serde::encode_into_std_write(value, buf, CONFIG) {
            buf.truncate(start);
            return Err(EncodeError::Serialize(e.to_string()));
        }
        let len = buf.len() - start + 4;
        if len > self.max_frame_bytes {
            buf.truncate(start);
            return Err(EncodeError::TooLarge {
                len,
                limit: self.max_frame_bytes,
            });
        }
        let crc = crc32fast::hash(&buf[start..]);
        buf.extend_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// Decodes one frame that spans all of `bytes`.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] saying what is wrong with the bytes.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        if bytes.len() > self.max_frame_bytes {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                limit: self.max_frame_bytes,
            });
        }
        if bytes.len() < FRAME_OVERHEAD {
            return Err(DecodeError::Truncated {
                len: bytes.len(),
                min: FRAME_OVERHEAD,
            });
        }
        if bytes[0] != WIRE_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: bytes[0],
                supported: WIRE_VERSION,
            });
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(DecodeError::Checksum { stored, computed });
        }
        let payload = &body[1..];
        let (value, used) = bincode::serde::decode_from_slice(payload, CONFIG)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if used != payload.len() {
            return Err(DecodeError::TrailingBytes {
                count: payload.len() - used,
            });
        }
        Ok(value)
    }
}

/// Error of [`WireCodec::encode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The value could not be serialized.
    #[error("cannot serialize message: {0}")]
    Serialize(String),
    /// The frame would exceed the codec's limit.
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size the frame would have.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// Error of [`WireCodec::decode`]: what is wrong with the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the framing itself.
    #[error("frame truncated: {len} bytes, a frame has at least {min}")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Smallest possible frame.
        min: usize,
    },
    /// Longer than the codec accepts.
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Written by another version of the protocol.
    #[error("unsupported wire version {found} (this build speaks version {supported})")]
    UnsupportedVersion {
        /// Version byte found.
        found: u8,
        /// Version this build speaks.
        supported: u8,
    },
    /// The bytes were altered after encoding (or cut and padded).
    #[error(
        "checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): frame corrupted"
    )]
    Checksum {
        /// Checksum in the frame.
        stored: u32,
        /// Checksum of the bytes received.
        computed: u32,
    },
    /// The checksum matched but the payload is not a valid value of the expected type
    /// (usually: sender and receiver disagree on the message type).
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// The payload decoded but left bytes unread.
    #[error("{count} unexpected trailing bytes after the payload")]
    TrailingBytes {
        /// Bytes left unread.
        count: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Address, AgentId, ClusterId, CorrelationId, Deadline, Envelope, Priority};

    fn sample() -> Envelope<Vec<u32>> {
        Envelope::new(
            Address::Agent(AgentId(5)),
            Address::Cluster(ClusterId(2)),
            77,
            vec![1, 2, 3],
        )
        .with_priority(Priority::High)
        .with_correlation(CorrelationId(9))
        .with_deadline(Deadline(123_456))
        .with_ack()
    }

    #[test]
    fn round_trip() {
        let codec = WireCodec::default();
        let env = sample();
        let bytes = codec.encode(&env).unwrap();
        assert_eq!(bytes[0], WIRE_VERSION);
        assert_eq!(codec.decode::<Envelope<Vec<u32>>>(&bytes).unwrap(), env);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let codec = WireCodec::default();
        let bytes = codec.encode(&sample()).unwrap();
        for len in 0..bytes.len() {
            assert!(
                codec.decode::<Envelope<Vec<u32>>>(&bytes[..len]).is_err(),
                "len {len}"
            );
        }
    }

    #[test]
    fn every_single_bit_flip_is_an_error() {
        let codec = WireCodec::default();
        let bytes = codec.encode(&sample()).unwrap();
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(codec.decode::<Envelope<Vec<u32>>>(&bad).is_err(), "bit {i}");
        }
    }

    #[test]
    fn version_and_limits_are_checked() {
        let codec = WireCodec::default();
        let mut bytes = codec.encode(&sample()).unwrap();
        bytes[0] = 9;
        assert!(matches!(
            codec.decode::<Envelope<Vec<u32>>>(&bytes),
            Err(DecodeError::UnsupportedVersion {
                found: 9,
                supported: WIRE_VERSION
            })
        ));
        let small = WireCodec::with_max_frame_bytes(16);
        let big = vec![7_u8; 100];
        assert!(matches!(
            small.encode(&big),
            Err(EncodeError::TooLarge { .. })
        ));
        let ok = codec.encode(&big).unwrap();
        assert!(matches!(
            small.decode::<Vec<u8>>(&ok),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn wrong_type_or_trailing_bytes_are_reported() {
        let codec = WireCodec::default();
        // A huge claimed length with a valid checksum must fail cleanly, not allocate.
        let mut frame = vec![
            WIRE_VERSION,
            0xFD,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0x0F,
        ];
        let crc = crc32fast::hash(&frame);
        frame.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            codec.decode::<Vec<u64>>(&frame),
            Err(DecodeError::Malformed(_))
        ));

        let bytes = codec.encode(&(1_u8, 2_u8)).unwrap();
        assert!(matches!(
            codec.decode::<u8>(&bytes),
            Err(DecodeError::TrailingBytes { count: 1 })
        ));
    }
}
