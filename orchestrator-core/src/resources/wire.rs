//! The Mesos v1 JSON form of resources:
//! `[{"name":"cpus","type":"SCALAR","scalar":{"value":4}}, …]`.
//!
//! Reading accepts both the reservation-refinement form (`reservations`) and
//! the older one (`role` plus an optional `reservation`) that frameworks
//! without the `RESERVATION_REFINEMENT` capability speak. Writing uses the
//! refinement form.

use std::collections::BTreeSet;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Range, Ranges, Reservation, ReservationKind, Resource, Resources, Scalar, Value, ANY_ROLE};
use crate::{Labels, Name};

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum WireType {
    Scalar,
    Ranges,
    Set,
}

#[derive(Serialize, Deserialize)]
struct WireScalar {
    value: f64,
}

#[derive(Serialize, Deserialize)]
struct WireRanges {
    #[serde(default)]
    range: Vec<Range>,
}

#[derive(Serialize, Deserialize)]
struct WireSet {
    #[serde(default)]
    item: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct WireAllocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<Name>,
}

#[derive(Deserialize)]
struct LegacyReservation {
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    labels: Labels,
}

#[derive(Serialize, Deserialize)]
struct WireResource {
    name: Name,
    #[serde(rename = "type")]
    kind: WireType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scalar: Option<WireScalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ranges: Option<WireRanges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    set: Option<WireSet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reservations: Vec<Reservation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allocation_info: Option<WireAllocation>,
    #[serde(default, skip_serializing)]
    role: Option<Name>,
    #[serde(default, skip_serializing)]
    reservation: Option<LegacyReservation>,
}

impl WireResource {
    fn into_resource(self) -> Result<Resource, String> {
        let name = self.name;
        if name.is_empty() {
            return Err("resource name must not be empty".into());
        }
        let missing = |field: &str| format!("resource `{name}` of type {:?} has no `{field}`", self.kind);
        let value = match self.kind {
            WireType::Scalar => {
                let s = self.scalar.ok_or_else(|| missing("scalar"))?;
                Value::Scalar(Scalar::try_from_f64(s.value).map_err(|e| format!("resource `{name}`: {e}"))?)
            }
            WireType::Ranges => {
                let r = self.ranges.ok_or_else(|| missing("ranges"))?;
                let pairs = r.range.into_iter().map(|r| (r.begin, r.end));
                Value::Ranges(Ranges::new(pairs).map_err(|e| format!("resource `{name}`: {e}"))?)
            }
            WireType::Set => {
                let s = self.set.ok_or_else(|| missing("set"))?;
                Value::Set(s.item.into_iter().collect::<BTreeSet<_>>())
            }
        };
        let mut reservations = self.reservations;
        if reservations.is_empty() {
            match (self.role, self.reservation) {
                (Some(role), Some(legacy)) if role != *ANY_ROLE => reservations.push(Reservation {
                    kind: ReservationKind::Dynamic,
                    role,
                    principal: legacy.principal,
                    labels: legacy.labels,
                }),
                (Some(role), None) if role != *ANY_ROLE => reservations.push(Reservation::fixed(role)),
                _ => {}
            }
        }
        if reservations.iter().any(|r| r.role.is_empty()) {
            return Err(format!("resource `{name}` has a reservation with an empty role"));
        }
        Ok(Resource {
            name,
            value,
            reservations,
            allocation_role: self.allocation_info.and_then(|a| a.role),
        })
    }

    fn from_resource(r: &Resource) -> WireResource {
        let (kind, scalar, ranges, set) = match &r.value {
            Value::Scalar(s) => (WireType::Scalar, Some(WireScalar { value: s.value() }), None, None),
            Value::Ranges(rs) => (
                WireType::Ranges,
                None,
                Some(WireRanges {
                    range: rs.as_slice().to_vec(),
                }),
                None,
            ),
            Value::Set(items) => (
                WireType::Set,
                None,
                None,
                Some(WireSet {
                    item: items.iter().cloned().collect(),
                }),
            ),
        };
        WireResource {
            name: r.name.clone(),
            kind,
            scalar,
            ranges,
            set,
            reservations: r.reservations.clone(),
            allocation_info: r
                .allocation_role
                .clone()
                .map(|role| WireAllocation { role: Some(role) }),
            role: None,
            reservation: None,
        }
    }
}

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireResource::from_resource(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Resource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        WireResource::deserialize(d)?.into_resource().map_err(D::Error::custom)
    }
}

impl Serialize for Resources {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Resources {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Resource>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_v1_json_form() {
        let json = r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":4.0}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":32000}]}}]"#;
        let r: Resources = serde_json::from_str(json).unwrap();
        assert_eq!(r.cpus(), 4.0);
        assert_eq!(r.ports().count(), 1001);
        assert_eq!(serde_json::to_string(&r).unwrap(), json);
    }

    #[test]
    fn reads_reservations_in_both_forms() {
        let legacy = r#"[{"name":"mem","type":"SCALAR","scalar":{"value":64},"role":"db","reservation":{"principal":"ops"}},
                         {"name":"cpus","type":"SCALAR","scalar":{"value":1},"role":"web"},
                         {"name":"disk","type":"SCALAR","scalar":{"value":5},"role":"*"}]"#;
        let r: Resources = serde_json::from_str(legacy).unwrap();
        let mem = r.iter().find(|x| x.name == "mem").unwrap();
        assert_eq!(mem.reservations[0].kind, ReservationKind::Dynamic);
        assert_eq!(mem.reservations[0].principal.as_deref(), Some("ops"));
        assert_eq!(r.reserved_for("web").cpus(), 1.0);
        assert_eq!(r.unreserved().disk(), 5.0);

        let refined = r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":1.0},"reservations":[{"type":"STATIC","role":"web"}],"allocation_info":{"role":"web"}}]"#;
        let r: Resources = serde_json::from_str(refined).unwrap();
        assert_eq!(r.reserved_for("web").cpus(), 1.0);
        assert_eq!(serde_json::to_string(&r).unwrap(), refined);
    }

    #[test]
    fn rejects_inconsistent_documents() {
        for (bad, says) in [
            (r#"[{"name":"cpus","type":"SCALAR"}]"#, "has no `scalar`"),
            (r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":-2}}]"#, "negative"),
            (
                r#"[{"name":"p","type":"RANGES","ranges":{"range":[{"begin":9,"end":1}]}}]"#,
                "ends before",
            ),
            (r#"[{"name":"x","type":"TEXT"}]"#, "unknown variant"),
            (r#"[{"name":"","type":"SET","set":{"item":[]}}]"#, "must not be empty"),
            (r#"{"name":"cpus"}"#, "expected a sequence"),
        ] {
            let err = serde_json::from_str::<Resources>(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
