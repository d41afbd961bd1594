//! RecordIO, the framing of Mesos's streaming HTTP responses: each record
//! is its length in decimal, a newline, then that many bytes.

use std::collections::VecDeque;

use futures_util::{Stream, StreamExt};

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

/// The records of a streaming HTTP body (a subscription's events, an
/// agent's commands), one at a time, however the body is chunked.
pub struct Records<S> {
    body: S,
    decoder: Decoder,
    ready: VecDeque<Vec<u8>>,
}

impl<S> std::fmt::Debug for Records<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("ready", &self.ready.len())
            .finish_non_exhaustive()
    }
}

impl<S, B, E> Records<S>
where
    S: Stream<Item = std::result::Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    /// Records of `body`, each at most `max_record` bytes.
    pub fn new(body: S, max_record: usize) -> Self {
        Self {
            body,
            decoder: Decoder::new(max_record),
            ready: VecDeque::new(),
        }
    }

    /// The next record; `None` when the body ends.
    ///
    /// # Errors
    /// [`Error::Transport`] when the body fails, [`Error::RecordIo`] when
    /// it is not RecordIO (the stream should then be dropped).
    pub async fn next(&mut self) -> Option<Result<Vec<u8>>> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(Ok(r));
            }
            let chunk = match self.body.next().await? {
                Ok(c) => c,
                Err(e) => {
                    return Some(Err(Error::Transport {
                        message: format!("the stream broke: {e}"),
                    }))
                }
            };
            match self.decoder.push(chunk.as_ref()) {
                Ok(records) => self.ready.extend(records),
                Err(e) => return Some(Err(e)),
            }
        }
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

    #[tokio::test]
    async fn records_come_one_at_a_time_from_any_chunking() {
        let mut bytes = encode(b"one");
        bytes.extend(encode(b"two"));
        let chunks: Vec<std::result::Result<Vec<u8>, String>> = bytes.chunks(3).map(|c| Ok(c.to_vec())).collect();
        let mut records = Records::new(futures_util::stream::iter(chunks), 16);
        assert_eq!(records.next().await.unwrap().unwrap(), b"one");
        assert_eq!(records.next().await.unwrap().unwrap(), b"two");
        assert!(records.next().await.is_none());
        let broken = futures_util::stream::iter(vec![Err::<Vec<u8>, _>("reset")]);
        assert!(Records::new(broken, 16).next().await.unwrap().is_err());
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
