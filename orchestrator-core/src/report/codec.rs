//! The report encoding: a versioned envelope around gzip'd MessagePack.
//!
//! ```text
//! "ORPT" | version: u8 | codec: u8 (1 = MessagePack with field names, gzip) | payload
//! ```
//!
//! MessagePack with field names keeps old readers working when fields are
//! added (unknown names are skipped, missing ones default); gzip at its
//! fastest level shrinks the repetitive ids and keys several times over for
//! little CPU. A decoder never trusts the sender: the encoded and the
//! decoded sizes are both capped before anything is allocated for them,
//! so a compression bomb costs at most [`Limits::max_decoded`] bytes.

use std::io::Read;

use super::Report;

/// The envelope version this build writes and reads.
pub const WIRE_VERSION: u8 = 1;

/// The HTTP content type of an encoded report.
pub const CONTENT_TYPE: &str = "application/vnd.orchestrator.report";

const MAGIC: &[u8; 4] = b"ORPT";
const CODEC_MSGPACK_GZIP: u8 = 1;

/// Size caps a decoder enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded report accepted, in bytes.
    pub max_encoded: usize,
    /// Largest decompressed payload accepted, in bytes.
    pub max_decoded: usize,
}

impl Default for Limits {
    /// 16 MiB on the wire, 256 MiB decompressed: a host with 100,000
    /// connections fits with room to spare.
    fn default() -> Self {
        Limits {
            max_encoded: 16 << 20,
            max_decoded: 256 << 20,
        }
    }
}

/// Why a report was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Bigger than [`Limits::max_encoded`] or, decompressed, [`Limits::max_decoded`].
    #[error("report too large: more than {limit} bytes {what}")]
    TooLarge {
        /// `encoded` or `decoded`.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// Not an orchestrator report.
    #[error("not an orchestrator report (bad magic bytes)")]
    NotAReport,
    /// Written by an incompatible version.
    #[error("report wire version {found} is not supported (this build reads {WIRE_VERSION})")]
    Version {
        /// The version found.
        found: u8,
    },
    /// An unknown payload codec.
    #[error("report codec {0} is not supported")]
    Codec(u8),
    /// The payload does not decompress or decode.
    #[error("malformed report: {0}")]
    Malformed(String),
}

/// Encodes a report.
///
/// # Errors
/// [`ReportError::Malformed`] if serialisation fails (it does not for
/// reports built from this crate's types).
pub fn encode(report: &Report) -> Result<Vec<u8>, ReportError> {
    encode_value(report)
}

/// Encodes anything that serialises as a [`Report`] does.
pub(super) fn encode_value(report: &impl serde::Serialize) -> Result<Vec<u8>, ReportError> {
    let malformed = |e: &dyn std::fmt::Display| ReportError::Malformed(e.to_string());
    let mut out = Vec::with_capacity(64 << 10);
    out.extend_from_slice(MAGIC);
    out.push(WIRE_VERSION);
    out.push(CODEC_MSGPACK_GZIP);
    // Serialised straight into the compressor, through a buffer that
    // batches MessagePack's many small writes: the uncompressed payload,
    // several times the size of what is sent, is never held whole.
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let mut w = std::io::BufWriter::with_capacity(32 << 10, gz);
    rmp_serde::encode::write_named(&mut w, report).map_err(|e| malformed(&e))?;
    w.into_inner()
        .map_err(|e| malformed(e.error()))?
        .finish()
        .map_err(|e| malformed(&e))
}

/// Decodes a report within the limits.
///
/// # Errors
/// [`ReportError`] says what is wrong; nothing is allocated beyond the limits.
pub fn decode(bytes: &[u8], limits: Limits) -> Result<Report, ReportError> {
    if bytes.len() > limits.max_encoded {
        return Err(ReportError::TooLarge {
            what: "encoded",
            limit: limits.max_encoded,
        });
    }
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return Err(ReportError::NotAReport);
    };
    let [version, codec, payload @ ..] = rest else {
        return Err(ReportError::NotAReport);
    };
    if *version != WIRE_VERSION {
        return Err(ReportError::Version { found: *version });
    }
    if *codec != CODEC_MSGPACK_GZIP {
        return Err(ReportError::Codec(*codec));
    }
    let cap = u64::try_from(limits.max_decoded).unwrap_or(u64::MAX).saturating_add(1);
    let mut plain = Vec::with_capacity(payload.len().saturating_mul(4).min(limits.max_decoded));
    flate2::read::GzDecoder::new(payload)
        .take(cap)
        .read_to_end(&mut plain)
        .map_err(|e| ReportError::Malformed(format!("gzip: {e}")))?;
    if plain.len() > limits.max_decoded {
        return Err(ReportError::TooLarge {
            what: "decoded",
            limit: limits.max_decoded,
        });
    }
    rmp_serde::from_slice(&plain).map_err(|e| ReportError::Malformed(e.to_string()))
}
