//! Structure-aware fuzzing with proptest: inputs are valid samples from a
//! corpus kept in the repository (`fuzz/corpus/<decoder>/`), mutated the
//! way fuzzers mutate (bit flips, inserted and deleted bytes, truncation,
//! duplicated runs, and tokens that break parsers: quotes, brackets, huge
//! and negative numbers, NUL). Random bytes alone stop at a decoder's first
//! check; mutated samples reach its depths.
//!
//! Each decoder that takes network input runs `cases()` cases per test run
//! (1,000 unless `ORCH_FUZZ_CASES` says otherwise), so the test command
//! stays bounded; a longer campaign is `ORCH_FUZZ_CASES=1000000 cargo test
//! fuzz`. A failing case is shrunk and saved by proptest as a regression.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::Index;

/// Tokens that break parsers when dropped into a sample.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\\",
    b"\\u0000",
    b"\0",
    b"\n",
    b"-1",
    b"-0",
    b"0.0",
    b"1e309",
    b"-1e309",
    b"99999999999999999999999",
    b"4294967296",
    b"NaN",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"\"\"",
    b"\xff",
    b"\xc3",
    b";",
    b"(",
    b")",
    b"*",
    b"/",
    b"..",
];

/// One mutation of a sample.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// XOR a byte with a mask.
    Flip(Index, u8),
    /// Insert a byte.
    Insert(Index, u8),
    /// Delete a byte.
    Delete(Index),
    /// Cut the sample short.
    Truncate(Index),
    /// Copy a run of the sample to another place.
    Duplicate(Index, Index, Index),
    /// Insert a parser-breaking token.
    Token(Index, Index),
}

impl Mutation {
    fn apply(&self, b: &mut Vec<u8>) {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
        match self {
            Mutation::Flip(i, mask) if !b.is_empty() => {
                let i = i.index(b.len());
                b[i] ^= mask.max(&1);
            }
            Mutation::Insert(i, v) => {
                let i = at(i, b.len());
                b.insert(i, *v);
            }
            Mutation::Delete(i) if !b.is_empty() => {
                b.remove(i.index(b.len()));
            }
            Mutation::Truncate(i) => b.truncate(at(i, b.len())),
            Mutation::Duplicate(from, len, to) if !b.is_empty() => {
                let from = from.index(b.len());
                let len = len.index((b.len() - from).min(64) + 1);
                let run: Vec<u8> = b[from..from + len].to_vec();
                let to = at(to, b.len());
                b.splice(to..to, run);
            }
            Mutation::Token(i, t) => {
                let token = TOKENS[t.index(TOKENS.len())];
                let i = at(i, b.len());
                b.splice(i..i, token.iter().copied());
            }
            _ => {}
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::Insert(i, v)),
        any::<Index>().prop_map(Mutation::Delete),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<Index>(), any::<Index>()).prop_map(|(a, b, c)| Mutation::Duplicate(a, b, c)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::Token(i, t)),
    ]
}

/// A sample of `corpus` with up to eight mutations (none, sometimes: the
/// valid samples themselves must decode).
///
/// # Panics
/// When the corpus is empty.
pub fn mutated(corpus: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    assert!(!corpus.is_empty(), "a fuzz corpus needs samples");
    (any::<Index>(), prop::collection::vec(mutation(), 0..8)).prop_map(move |(i, ms)| {
        let mut b = corpus[i.index(corpus.len())].clone();
        for m in &ms {
            m.apply(&mut b);
        }
        b
    })
}

/// The samples in `fuzz/corpus/<name>/` of the repository, one per file.
///
/// # Panics
/// When the directory is missing or empty.
pub fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir().join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the fuzz corpus {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let samples: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).expect("a corpus file")).collect();
    assert!(!samples.is_empty(), "the fuzz corpus {} is empty", dir.display());
    samples
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// Cases per decoder in one test run: `ORCH_FUZZ_CASES`, else 1,000.
pub fn cases() -> u32 {
    std::env::var("ORCH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// A proptest configuration running [`cases`] cases.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    }
}
