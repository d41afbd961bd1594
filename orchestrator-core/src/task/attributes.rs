use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::resources::{Range, Ranges, Scalar};
use crate::{Error, Result};

/// The value of an agent attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum AttributeValue {
    /// Free text (`rack:r1`).
    Text(String),
    /// A number (`cores:8`).
    Scalar(Scalar),
    /// Integer ranges (`ids:[1-4]`).
    Ranges(Ranges),
    /// Named items (`zones:{a,b}`).
    Set(Vec<String>),
}

impl fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributeValue::Text(t) => f.write_str(t),
            AttributeValue::Scalar(s) => write!(f, "{s}"),
            AttributeValue::Ranges(r) => write!(f, "{r}"),
            AttributeValue::Set(items) => write!(f, "{{{}}}", items.join(",")),
        }
    }
}

/// An agent attribute used by placement constraints.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    /// Name.
    pub name: String,
    /// Value.
    pub value: AttributeValue,
}

/// An agent's attributes, in the order given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes(pub Vec<Attribute>);

impl Attributes {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of the attribute `name`.
    pub fn get(&self, name: &str) -> Option<&AttributeValue> {
        self.0.iter().find(|a| a.name == name).map(|a| &a.value)
    }
}

/// The agent flag form: `rack:r1;cores:8;ids:[1-4];zones:{a,b}`; a value
/// that reads as a number is a scalar, as Mesos parses it.
impl FromStr for Attributes {
    type Err = Error;
    fn from_str(s: &str) -> Result<Attributes> {
        let mut out = Vec::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once(':').ok_or_else(|| Error::Invalid {
                what: "attribute",
                reason: format!("`{part}` is not NAME:VALUE"),
            })?;
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() {
                return Err(Error::Invalid {
                    what: "attribute",
                    reason: format!("`{part}` has an empty name"),
                });
            }
            let value = if value.starts_with('[') || value.starts_with('{') {
                let parsed: crate::Resources = format!("x:{value}").parse()?;
                match parsed.iter().next().map(|r| &r.value) {
                    Some(crate::Value::Ranges(r)) => AttributeValue::Ranges(r.clone()),
                    Some(crate::Value::Set(items)) => AttributeValue::Set(items.iter().cloned().collect()),
                    _ => AttributeValue::Text(value.to_string()),
                }
            } else if let Some(s) = value.parse::<f64>().ok().and_then(|v| Scalar::try_from_f64(v).ok()) {
                AttributeValue::Scalar(s)
            } else {
                AttributeValue::Text(value.to_string())
            };
            out.push(Attribute {
                name: name.to_string(),
                value,
            });
        }
        Ok(Attributes(out))
    }
}

#[derive(Serialize, Deserialize)]
struct WireText {
    value: String,
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
struct WireAttribute {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<WireText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scalar: Option<WireScalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ranges: Option<WireRanges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    set: Option<WireSet>,
}

impl Serialize for Attribute {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut w = WireAttribute {
            name: self.name.clone(),
            kind: String::new(),
            text: None,
            scalar: None,
            ranges: None,
            set: None,
        };
        match &self.value {
            AttributeValue::Text(t) => {
                w.kind = "TEXT".into();
                w.text = Some(WireText { value: t.clone() });
            }
            AttributeValue::Scalar(v) => {
                w.kind = "SCALAR".into();
                w.scalar = Some(WireScalar { value: v.value() });
            }
            AttributeValue::Ranges(r) => {
                w.kind = "RANGES".into();
                w.ranges = Some(WireRanges {
                    range: r.as_slice().to_vec(),
                });
            }
            AttributeValue::Set(items) => {
                w.kind = "SET".into();
                w.set = Some(WireSet { item: items.clone() });
            }
        }
        w.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Attribute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = WireAttribute::deserialize(d)?;
        let missing = || D::Error::custom(format!("attribute `{}` of type {} has no value", w.name, w.kind));
        let value = match w.kind.as_str() {
            "TEXT" => AttributeValue::Text(w.text.ok_or_else(missing)?.value),
            "SCALAR" => {
                let v = w.scalar.ok_or_else(missing)?.value;
                AttributeValue::Scalar(Scalar::try_from_f64(v).map_err(D::Error::custom)?)
            }
            "RANGES" => {
                let r = w
                    .ranges
                    .ok_or_else(missing)?
                    .range
                    .into_iter()
                    .map(|r| (r.begin, r.end));
                AttributeValue::Ranges(Ranges::new(r).map_err(D::Error::custom)?)
            }
            "SET" => AttributeValue::Set(w.set.ok_or_else(missing)?.item),
            other => return Err(D::Error::custom(format!("unknown attribute type `{other}`"))),
        };
        Ok(Attribute { name: w.name, value })
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Vec::<Attribute>::deserialize(d).map(Attributes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag_and_round_trips_json() {
        let a: Attributes = "rack:r1;cores:8;ids:[1-4];zones:{a,b}".parse().unwrap();
        assert_eq!(a.get("rack").unwrap().to_string(), "r1");
        assert!(matches!(a.get("cores"), Some(AttributeValue::Scalar(_))));
        assert!(matches!(a.get("ids"), Some(AttributeValue::Ranges(_))));
        let json = serde_json::to_string(&a).unwrap();
        assert!(
            json.contains(r#"{"name":"rack","type":"TEXT","text":{"value":"r1"}}"#),
            "{json}"
        );
        let back: Attributes = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        assert!("rack".parse::<Attributes>().is_err());
        assert!(serde_json::from_str::<Attributes>(r#"[{"name":"x","type":"TEXT"}]"#).is_err());
    }
}
