//! Identifier newtypes. On the Mesos v1 wire every id is an object
//! `{"value": "..."}`; these types serialise exactly so.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Cloning is a reference-count bump: ids are copied into every
        /// offer and status update.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// An id from any non-empty string.
            ///
            /// # Errors
            /// [`Error::Invalid`] when the string is empty.
            pub fn new(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                if value.is_empty() {
                    return Err(Error::Invalid {
                        what: stringify!($name),
                        reason: "must not be empty".into(),
                    });
                }
                Ok(Self(Arc::from(value)))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                WireId { value: &self.0 }.serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let wire = OwnedWireId::deserialize(d)?;
                Self::new(wire.value).map_err(serde::de::Error::custom)
            }
        }
    };
}

#[derive(Serialize)]
struct WireId<'a> {
    value: &'a str,
}

#[derive(Deserialize)]
struct OwnedWireId {
    value: String,
}

id_type!(
    /// An agent (Mesos: `SlaveID`/`AgentID`).
    AgentId
);
id_type!(
    /// A registered framework.
    FrameworkId
);
id_type!(
    /// A task, unique within its framework.
    TaskId
);
id_type!(
    /// An offer; each is used at most once.
    OfferId
);
id_type!(
    /// An executor, unique within its framework.
    ExecutorId
);
id_type!(
    /// A container launched by a containerizer.
    ContainerId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_use_the_mesos_object_form() {
        let id = TaskId::new("web.1").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, r#"{"value":"web.1"}"#);
        let back: TaskId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn empty_ids_are_rejected_in_code_and_on_the_wire() {
        assert!(AgentId::new("").is_err());
        let err = serde_json::from_str::<AgentId>(r#"{"value":""}"#).unwrap_err();
        assert!(err.to_string().contains("must not be empty"), "{err}");
    }
}
