//! RecordIO, the framing of Mesos's streaming HTTP responses: each record
//! is its length in decimal, a newline, then that many bytes.

use crate::{Error, Result};

/// One record, framed.
pub fn encode(record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.len() + 12);
    out.extend_from_slice(record.len().to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(record);
    out
}

/// Splits a byte stream, fed in arbitrary chunks, back into records.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    max_record: usize,
}

impl Decoder {
    /// A decoder that rejects records larger than `max_record` bytes, so a
    /// bad peer cannot make it buffer without bound.
    pub fn new(max_record: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_record,
        }
    }

    /// Feeds `chunk` and returns the records it completed.
    ///
    /// # Errors
    /// [`Error::RecordIo`] for a length that is not a decimal number or is
    /// larger than the limit; the decoder should then be dropped.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.buf.extend_from_slice(chunk);
        let mut records = Vec::new();
        let mut start = 0;
        loop {
            let rest = &self.buf[start..];
            let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
                if rest.len() > 20 {
                    return Err(Error::RecordIo {
                        reason: "record length longer than 20 digits".into(),
                    });
                }
                break;
            };
            let digits = &rest[..nl];
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                let shown = String::from_utf8_lossy(&digits[..digits.len().min(20)]).into_owned();
                return Err(Error::RecordIo {
                    reason: format!("record length `{shown}` is not a decimal number"),
                });
            }
            let len: usize = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| Error::RecordIo {
                    reason: "record length out of range".into(),
                })?;
            if len > self.max_record {
                return Err(Error::RecordIo {
                    reason: format!("record of {len} bytes exceeds the limit of {} bytes", self.max_record),
                });
            }
            if rest.len() < nl + 1 + len {
                break;
            }
            records.push(rest[nl + 1..nl + 1 + len].to_vec());
            start += nl + 1 + len;
        }
        self.buf.drain(..start);
        Ok(records)
    }

    /// Bytes of an unfinished record still buffered.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_and_unframes() {
        assert_eq!(encode(b"{}"), b"2\n{}");
        let mut d = Decoder::new(1024);
        let mut stream = encode(br#"{"type":"HEARTBEAT"}"#);
        stream.extend(encode(b""));
        stream.extend(encode(b"abc"));
        assert_eq!(
            d.push(&stream).unwrap(),
            vec![br#"{"type":"HEARTBEAT"}"#.to_vec(), vec![], b"abc".to_vec()]
        );
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn rejects_garbage_and_oversized_records() {
        assert!(Decoder::new(10)
            .push(b"x1\nabc")
            .unwrap_err()
            .to_string()
            .contains("not a decimal"));
        assert!(Decoder::new(10).push(b"\nabc").is_err());
        assert!(Decoder::new(10)
            .push(b"11\n")
            .unwrap_err()
            .to_string()
            .contains("exceeds the limit"));
        assert!(Decoder::new(10)
            .push(&[b'9'; 40])
            .unwrap_err()
            .to_string()
            .contains("20 digits"));
        assert!(Decoder::new(usize::MAX).push(b"99999999999999999999999\n").is_err());
    }

    proptest! {
        #[test]
        fn any_chunking_gives_back_the_records(
            records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 0..8),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let stream: Vec<u8> = records.iter().flat_map(|r| encode(r)).collect();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.sort_unstable();
            let mut d = Decoder::new(64);
            let mut got = Vec::new();
            let mut last = 0;
            for p in points.into_iter().chain([stream.len()]) {
                got.extend(d.push(&stream[last..p]).unwrap());
                last = p;
            }
            prop_assert_eq!(got, records);
            prop_assert_eq!(d.pending(), 0);
        }
    }
}
