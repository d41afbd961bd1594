//! The sync engine's one decision, pure: given what both sides hold now and
//! the digest they last agreed on (the *base*), which side's state is
//! copied to the other, and whether that is a conflict.

use super::{ConflictPolicy, Side};

/// What one side holds at a path, as far as deciding needs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Held {
    /// The digest of data, ACL and type; `None`: absent.
    pub digest: Option<u128>,
    /// Modification time, ms (when present).
    pub mtime: Option<i64>,
}

/// What to do with a path whose sides differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// One side changed since the base: copy it to the other.
    Copy(Side),
    /// Both changed since the base: settled by the policy, `None` under
    /// report-only (nothing is written).
    Conflict(Option<Side>),
}

/// Whose state wins at a path whose sides differ. `last_side` is the side
/// whose event came last; `authoritative` wins where nothing else tells.
pub(super) fn decide(
    base: Option<u128>,
    source: Held,
    target: Held,
    policy: ConflictPolicy,
    authoritative: Side,
    last_side: Side,
) -> Decision {
    let (ds, dt) = (source.digest, target.digest);
    match base {
        // The side still equal to the base is the stale one.
        Some(b) if Some(b) == dt => return Decision::Copy(Side::Source),
        Some(b) if Some(b) == ds => return Decision::Copy(Side::Target),
        // Never agreed: a node on one side only is new there.
        None if ds.is_none() => return Decision::Copy(Side::Target),
        None if dt.is_none() => return Decision::Copy(Side::Source),
        None => return Decision::Copy(authoritative),
        Some(_) => {}
    }
    Decision::Conflict(match policy {
        ConflictPolicy::SourceWins => Some(authoritative),
        ConflictPolicy::ReportOnly => None,
        ConflictPolicy::NewestWins => Some(match (ds.and(source.mtime), dt.and(target.mtime)) {
            (Some(a), Some(b)) if b > a => Side::Target,
            (Some(a), Some(b)) if a > b => Side::Source,
            (Some(_), Some(_)) => authoritative,
            // A deletion against a change: the side whose event came last.
            _ => last_side,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConflictPolicy::*;
    use Side::*;

    fn held(digest: u128, mtime: i64) -> Held {
        Held {
            digest: Some(digest),
            mtime: Some(mtime),
        }
    }
    const GONE: Held = Held {
        digest: None,
        mtime: None,
    };

    #[test]
    fn the_side_still_at_the_base_is_stale() {
        assert_eq!(
            decide(Some(1), held(2, 5), held(1, 1), SourceWins, Source, Source),
            Decision::Copy(Source)
        );
        assert_eq!(
            decide(Some(1), held(1, 1), held(2, 5), SourceWins, Source, Target),
            Decision::Copy(Target)
        );
        // A deletion on one side is a change like any other.
        assert_eq!(
            decide(Some(1), GONE, held(1, 1), SourceWins, Target, Source),
            Decision::Copy(Source)
        );
        assert_eq!(
            decide(Some(1), held(1, 1), GONE, SourceWins, Source, Target),
            Decision::Copy(Target)
        );
    }

    #[test]
    fn without_a_base_a_node_on_one_side_only_is_new_there() {
        assert_eq!(
            decide(None, held(1, 1), GONE, ReportOnly, Target, Target),
            Decision::Copy(Source)
        );
        assert_eq!(
            decide(None, GONE, held(1, 1), ReportOnly, Source, Source),
            Decision::Copy(Target)
        );
        // On both sides and different: the authoritative side, not a conflict.
        assert_eq!(
            decide(None, held(1, 1), held(2, 9), NewestWins, Target, Source),
            Decision::Copy(Target)
        );
    }

    #[test]
    fn both_moved_is_a_conflict_settled_by_the_policy() {
        let (s, t) = (held(2, 10), held(3, 20));
        assert_eq!(
            decide(Some(1), s, t, SourceWins, Source, Source),
            Decision::Conflict(Some(Source))
        );
        // After cutover the target is authoritative, and "source wins" means it.
        assert_eq!(
            decide(Some(1), s, t, SourceWins, Target, Source),
            Decision::Conflict(Some(Target))
        );
        assert_eq!(
            decide(Some(1), s, t, ReportOnly, Source, Source),
            Decision::Conflict(None)
        );
        assert_eq!(
            decide(Some(1), s, t, NewestWins, Source, Source),
            Decision::Conflict(Some(Target))
        );
        assert_eq!(
            decide(Some(1), t, s, NewestWins, Target, Target),
            Decision::Conflict(Some(Source))
        );
        let tie = (held(2, 10), held(3, 10));
        assert_eq!(
            decide(Some(1), tie.0, tie.1, NewestWins, Target, Source),
            Decision::Conflict(Some(Target))
        );
        // Deleted on one side, changed on the other: the last event wins.
        assert_eq!(
            decide(Some(1), GONE, t, NewestWins, Source, Source),
            Decision::Conflict(Some(Source))
        );
        assert_eq!(
            decide(Some(1), GONE, t, NewestWins, Source, Target),
            Decision::Conflict(Some(Target))
        );
    }
}
