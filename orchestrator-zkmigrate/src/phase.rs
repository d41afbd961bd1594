//! The phases of a migration and their persisted record.
//!
//! `plan → copy → sync → verify → cutover → finalize`, with `rollback`
//! possible until `finalize`. The record lives in a small JSON file beside
//! the tool — outside the migrated subtree, so it is never synced and
//! survives either ensemble — and is replaced atomically (write, rename)
//! after every phase, so a stopped tool resumes where it was.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sync::Side;

/// A phase, in order. The recorded phase is the last one completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nothing done yet.
    New,
    /// Both trees read and the writes counted.
    Plan,
    /// The target holds a copy of the source.
    Copy,
    /// Changes flow both ways.
    Sync,
    /// Checksums of both sides agree.
    Verify,
    /// The target is authoritative; clients move to it.
    Cutover,
    /// Sync stopped; the migration is over and cannot be rolled back.
    Finalize,
    /// Rolled back: the source is authoritative again.
    RolledBack,
}

impl Phase {
    /// The phase after this one on the way to `finalize`.
    pub fn next(self) -> Option<Phase> {
        match self {
            Phase::New | Phase::RolledBack => Some(Phase::Plan),
            Phase::Plan => Some(Phase::Copy),
            Phase::Copy => Some(Phase::Sync),
            Phase::Sync => Some(Phase::Verify),
            Phase::Verify => Some(Phase::Cutover),
            Phase::Cutover => Some(Phase::Finalize),
            Phase::Finalize => None,
        }
    }

    /// Whether the live sync should run while the migration is in this phase.
    pub fn syncs(self) -> bool {
        matches!(self, Phase::Sync | Phase::Verify | Phase::Cutover)
    }

    /// Parses a phase name (`plan`, `copy`, … `finalize`).
    ///
    /// # Errors
    /// [`Error::Phase`] for an unknown name.
    pub fn parse(s: &str) -> Result<Phase> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| Error::Phase {
            action: format!("go to {s:?}"),
            phase: "-".into(),
            reason: "unknown phase (plan, copy, sync, verify, cutover, finalize)".into(),
        })
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

/// One completed step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The phase reached.
    pub phase: Phase,
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// What was found or done.
    pub note: String,
}

/// The persisted record of one migration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationState {
    /// The source, as given (`servers/root`).
    pub source: String,
    /// The target, as given.
    pub target: String,
    /// The last phase completed.
    pub phase: Phase,
    /// The side clients should use.
    pub authoritative: Side,
    /// Every step, oldest first.
    pub history: Vec<Step>,
}

impl MigrationState {
    /// A fresh record.
    pub fn new(source: &str, target: &str) -> Self {
        MigrationState {
            source: source.to_string(),
            target: target.to_string(),
            phase: Phase::New,
            authoritative: Side::Source,
            history: Vec::new(),
        }
    }

    /// Loads the record at `path`, if there is one.
    ///
    /// # Errors
    /// [`Error::State`] when it exists but cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        let err = |reason: String| Error::State {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| err(format!("not a migration record: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// Writes the record atomically (temporary file, then rename).
    ///
    /// # Errors
    /// [`Error::State`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let err = |e: std::io::Error| Error::State {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut tmp = PathBuf::from(path);
        tmp.as_mut_os_string().push(".tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| err(std::io::Error::other(e)))?;
        std::fs::write(&tmp, bytes).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Records that `phase` completed.
    ///
    /// # Errors
    /// [`Error::Phase`] unless `phase` is the next one (or the current one again).
    pub fn advance(&mut self, phase: Phase, note: impl Into<String>, at_ms: u64) -> Result<()> {
        if phase != self.phase && self.phase.next() != Some(phase) {
            return Err(self.refuse(
                &format!("go to {phase}"),
                &format!(
                    "the next phase is {}",
                    self.phase.next().map_or("none".into(), |p| p.to_string())
                ),
            ));
        }
        if phase == Phase::Cutover {
            self.authoritative = Side::Target;
        }
        self.phase = phase;
        self.history.push(Step {
            phase,
            at_ms,
            note: note.into(),
        });
        Ok(())
    }

    /// Records a rollback: the source is authoritative again.
    ///
    /// # Errors
    /// [`Error::Phase`] once the migration is finalized.
    pub fn rollback(&mut self, note: impl Into<String>, at_ms: u64) -> Result<()> {
        if self.phase == Phase::Finalize {
            return Err(self.refuse("roll back", "the migration is finalized"));
        }
        self.phase = Phase::RolledBack;
        self.authoritative = Side::Source;
        self.history.push(Step {
            phase: Phase::RolledBack,
            at_ms,
            note: note.into(),
        });
        Ok(())
    }

    pub(crate) fn refuse(&self, action: &str, reason: &str) -> Error {
        Error::Phase {
            action: action.to_string(),
            phase: self.phase.to_string(),
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_advance_in_order_and_roll_back_until_final() {
        let mut s = MigrationState::new("a:1/", "b:1/");
        assert!(s.advance(Phase::Copy, "", 0).is_err(), "plan comes first");
        for p in [Phase::Plan, Phase::Copy, Phase::Sync, Phase::Verify, Phase::Cutover] {
            s.advance(p, "", 0).unwrap();
        }
        assert_eq!(s.authoritative, Side::Target);
        s.rollback("", 0).unwrap();
        assert_eq!((s.phase, s.authoritative), (Phase::RolledBack, Side::Source));
        assert_eq!(s.phase.next(), Some(Phase::Plan));
        for p in [
            Phase::Plan,
            Phase::Copy,
            Phase::Sync,
            Phase::Verify,
            Phase::Cutover,
            Phase::Finalize,
        ] {
            s.advance(p, "", 0).unwrap();
        }
        let e = s.rollback("", 0).unwrap_err().to_string();
        assert_eq!(e, "cannot roll back in phase finalize: the migration is finalized");
    }

    #[test]
    fn the_record_survives_a_round_trip_on_disk() {
        let dir = std::env::temp_dir().join(format!("zkm-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert_eq!(MigrationState::load(&path).unwrap(), None);
        let mut s = MigrationState::new("a:1/x", "b:1/x");
        s.advance(Phase::Plan, "12 nodes", 5).unwrap();
        s.save(&path).unwrap();
        assert_eq!(MigrationState::load(&path).unwrap(), Some(s));
        std::fs::write(&path, "{").unwrap();
        assert!(MigrationState::load(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
        assert_eq!(Phase::parse("cutover").unwrap(), Phase::Cutover);
        assert!(Phase::parse("launch").is_err());
    }
}
