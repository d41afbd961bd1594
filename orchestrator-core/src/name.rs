//! [`Name`]: an immutable, cheaply cloned string for the names that are
//! copied on every offer (resource names, roles).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable string that clones by bumping a reference count.
///
/// Allocators copy resources for every offer, filter and allocation; with
/// `String` names each copy allocated once per entry. The common Mesos
/// resource names share one allocation for the whole process.
#[derive(Clone, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Equal names have equal text, so hashing the text is consistent
        // with the pointer-first equality below.
        self.0.hash(state);
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        // Interned names compare by pointer; others by content.
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for Name {}

const COMMON: [&str; 6] = ["cpus", "mem", "disk", "ports", "gpus", "*"];

fn common() -> &'static [Arc<str>; 6] {
    static NAMES: OnceLock<[Arc<str>; 6]> = OnceLock::new();
    NAMES.get_or_init(|| COMMON.map(Arc::from))
}

impl Name {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        match COMMON.iter().position(|c| *c == s) {
            Some(i) => Name(common()[i].clone()),
            None => Name(Arc::from(s)),
        }
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name::from(s.as_str())
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Self {
        Name::from(s.as_str())
    }
}

impl From<&Name> for Name {
    fn from(s: &Name) -> Self {
        s.clone()
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Name::from(&*s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_names_share_one_allocation() {
        let a = Name::from("cpus");
        let b = Name::from(String::from("cpus"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, "cpus");
        assert_eq!(serde_json::to_string(&a).unwrap(), r#""cpus""#);
        let c: Name = serde_json::from_str(r#""custom""#).unwrap();
        assert_eq!(c.as_str(), "custom");
    }
}
