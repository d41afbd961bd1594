//! The report encoding: a versioned envelope around gzip'd MessagePack.
//!
//! ```text
//! "ORPT" | version: u8 | codec: u8 (1 = MessagePack with field names, gzip) | payload
//! ```
//!
//! MessagePack with field names keeps old readers working when fields are
//! added (unknown names are skipped, missing ones default); gzip at its
//! fastest level shrinks the repetitive ids and keys several times over for
//! little CPU. A decoder never trusts the sender: the encoded size is
//! capped before anything is read, and the payload is decoded as it
//! decompresses, counting bytes as they come, so the decompressed payload
//! is never held whole and a compression bomb stops at
//! [`Limits::max_decoded`] bytes read (most stop at their first bytes,
//! which are not MessagePack).

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
    let mut capped = Capped {
        inner: std::io::BufReader::with_capacity(64 << 10, flate2::read::GzDecoder::new(payload)),
        left: limits.max_decoded,
        exceeded: false,
    };
    let decoded = rmp_serde::from_read(&mut capped);
    if capped.exceeded {
        return Err(ReportError::TooLarge {
            what: "decoded",
            limit: limits.max_decoded,
        });
    }
    let report: Report = decoded.map_err(|e| ReportError::Malformed(e.to_string()))?;
    // Bytes after the report (or a bad gzip trailer) make it malformed.
    let mut rest = [0u8; 1];
    match capped.read(&mut rest) {
        Ok(0) => Ok(report),
        Ok(_) => Err(ReportError::Malformed("bytes after the report".into())),
        Err(_) if capped.exceeded => Err(ReportError::TooLarge {
            what: "decoded",
            limit: limits.max_decoded,
        }),
        Err(e) => Err(ReportError::Malformed(format!("gzip: {e}"))),
    }
}

/// A reader that fails once more than `left` bytes have come through, and
/// says so (`exceeded`), so a decoder reading from it stops at the limit.
struct Capped<R> {
    inner: R,
    left: usize,
    exceeded: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // At the limit: only the end of the stream is still welcome.
            let one = buf.len().min(1);
            let n = self.inner.read(&mut buf[..one])?;
            if n > 0 {
                self.exceeded = true;
                return Err(std::io::Error::other("decoded size limit"));
            }
            return Ok(0);
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n;
        Ok(n)
    }
}
