//! The Mesos agent flag form: `cpus:4;mem:8192;ports:[31000-32000]`,
//! `cpus(web):2` for a static reservation, `{a,b}` for sets. A string that
//! starts with `[` is taken as the v1 JSON form, as the Mesos flag allows.

use std::collections::BTreeSet;
use std::str::FromStr;

use super::{Ranges, Reservation, Resource, Resources, Scalar, Value, ANY_ROLE};
use crate::{Error, Result};

impl FromStr for Resources {
    type Err = Error;

    fn from_str(input: &str) -> Result<Resources> {
        let trimmed = input.trim();
        if trimmed.starts_with('[') {
            return serde_json::from_str(trimmed).map_err(|e| Error::resources(input, e.to_string()));
        }
        let mut out = Resources::new();
        for part in trimmed.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            out.push(parse_one(part)?);
        }
        Ok(out)
    }
}

fn parse_one(part: &str) -> Result<Resource> {
    let (head, value) = part
        .split_once(':')
        .ok_or_else(|| Error::resources(part, "expected NAME:VALUE"))?;
    let (name, role) = match head.split_once('(') {
        Some((name, rest)) => {
            let role = rest
                .strip_suffix(')')
                .ok_or_else(|| Error::resources(part, "role must be closed with `)`"))?;
            (name.trim(), Some(role.trim()))
        }
        None => (head.trim(), None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
        return Err(Error::resources(part, format!("invalid resource name `{name}`")));
    }
    let value = parse_value(value.trim()).map_err(|reason| Error::resources(part, reason))?;
    let mut resource = Resource::new(name, value);
    match role {
        Some("") => return Err(Error::resources(part, "empty role")),
        Some(role) if role != ANY_ROLE => resource = resource.reserved(Reservation::fixed(role)),
        _ => {}
    }
    Ok(resource)
}

fn parse_value(text: &str) -> std::result::Result<Value, String> {
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("ranges must be closed with `]`")?;
        let mut pairs = Vec::new();
        for piece in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (b, e) = piece
                .split_once('-')
                .ok_or_else(|| format!("range `{piece}` must be BEGIN-END"))?;
            let begin = b.trim().parse::<u64>().map_err(|e| format!("range `{piece}`: {e}"))?;
            let end = e.trim().parse::<u64>().map_err(|e| format!("range `{piece}`: {e}"))?;
            pairs.push((begin, end));
        }
        return Ranges::new(pairs).map(Value::Ranges);
    }
    if let Some(inner) = text.strip_prefix('{') {
        let inner = inner.strip_suffix('}').ok_or("sets must be closed with `}`")?;
        let items: BTreeSet<String> = inner
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        return Ok(Value::Set(items));
    }
    let v = text
        .parse::<f64>()
        .map_err(|_| format!("`{text}` is not a number, [ranges] or {{set}}"))?;
    Scalar::try_from_f64(v).map(Value::Scalar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_agent_flag_form() {
        let r: Resources = "cpus:4;mem:8192;disk:10000;ports:[31000-32000]".parse().unwrap();
        assert_eq!(r.cpus(), 4.0);
        assert_eq!(r.mem(), 8192.0);
        assert_eq!(r.disk(), 10000.0);
        assert_eq!(r.ports().count(), 1001);
        assert_eq!(r.to_string(), "cpus:4;mem:8192;disk:10000;ports:[31000-32000]");
    }

    #[test]
    fn parses_roles_sets_and_several_ranges() {
        let r: Resources = "cpus(web):2; cpus:1.5 ;gpus:1;ports:[1-2,5-6];zones:{a, b}"
            .parse()
            .unwrap();
        assert_eq!(r.cpus(), 3.5);
        assert_eq!(r.reserved_for("web").cpus(), 2.0);
        assert_eq!(r.unreserved().cpus(), 1.5);
        assert_eq!(r.ports().count(), 4);
        assert_eq!(r.set("zones").len(), 2);
        assert_eq!(
            r.to_string(),
            "cpus(web):2;cpus:1.5;gpus:1;ports:[1-2, 5-6];zones:{a, b}"
        );
        let back: Resources = r.to_string().parse().unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        for (bad, says) in [
            ("cpus", "NAME:VALUE"),
            ("cpus:-1", "negative"),
            ("cpus:abc", "not a number"),
            ("cpus:NaN", "finite"),
            ("ports:[10-1]", "ends before"),
            ("ports:[10-", "closed"),
            ("ports:[a-b]", "invalid digit"),
            ("cpus(web:1", "closed"),
            ("c pus:1", "invalid resource name"),
            ("cpus():1", "empty role"),
        ] {
            let err = bad.parse::<Resources>().unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn accepts_json_where_the_flag_does() {
        let r: Resources = r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":2}}]"#.parse().unwrap();
        assert_eq!(r.cpus(), 2.0);
    }
}
