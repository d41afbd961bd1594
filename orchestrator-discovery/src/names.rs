//! Names as Mesos-DNS makes them: RFC 1123 labels from task and framework
//! names, the short task-id hash and the agent-id tail of canonical names.

/// The longest DNS label (RFC 1035).
pub const MAX_LABEL: usize = 63;

/// One RFC 1123 label from arbitrary text: lower case, characters other
/// than `a-z`, `0-9` and `-` dropped, no `-` at either end, at most 63
/// bytes. Empty when nothing valid is left.
pub fn label(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_LABEL));
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || (c == '-' && !out.is_empty()) {
            out.push(c);
            if out.len() == MAX_LABEL {
                break;
            }
        }
    }
    out.truncate(out.trim_end_matches('-').len());
    out
}

/// A task's name as one label, as Mesos-DNS names tasks: the dots of a
/// name become dashes, so Marathon's `web.prod` (app `/prod/web`) is
/// `web-prod`.
pub fn task_label(name: &str) -> String {
    let parts: Vec<String> = name.split('.').map(label).filter(|l| !l.is_empty()).collect();
    label(&parts.join("-"))
}

/// A framework's name as a domain fragment: each dot-separated part a
/// label, empty parts dropped (`My Framework` → `myframework`).
pub fn domain_fragment(name: &str) -> String {
    name.split('.')
        .map(label)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

/// The five-character hash of a task id that tells apart a task's
/// canonical name from its siblings' (`nginx-s2bh7-s1`): SHA-1, base32,
/// lower case, as Mesos-DNS.
pub fn task_id_hash(task_id: &str) -> String {
    let digest = sha1_smol::Sha1::from(task_id).digest().bytes();
    let mut encoded = base32(&digest);
    encoded.truncate(5);
    encoded
}

/// RFC 4648 base32 in lower case, without padding.
fn base32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes).to_ascii_lowercase()
}

/// The last dash-separated part of an agent id, lower case
/// (`20150126-S1` → `s1`), as canonical task names carry it.
pub fn agent_id_tail(agent_id: &str) -> String {
    label(agent_id.rsplit('-').next().unwrap_or(agent_id))
}

/// A query name in the form records are kept under: lower case, with
/// the trailing dot.
pub fn canonical(name: &str) -> String {
    let mut out = name.to_ascii_lowercase();
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_label(l: &str) -> bool {
        l.len() <= MAX_LABEL
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    }

    proptest! {
        #[test]
        fn any_name_gives_valid_labels(name in "\\PC{0,150}") {
            prop_assert!(is_label(&label(&name)));
            prop_assert!(is_label(&task_label(&name)));
            prop_assert!(domain_fragment(&name).split('.').all(|l| !l.is_empty() && is_label(l)) || domain_fragment(&name).is_empty());
            prop_assert!(is_label(&agent_id_tail(&name)));
        }
    }

    #[test]
    fn labels_follow_rfc_1123_as_mesos_dns_mangles_them() {
        assert_eq!(label("Web_Server"), "webserver");
        assert_eq!(label("--a--b--"), "a--b");
        assert_eq!(label("ünïcode"), "ncode");
        assert_eq!(label("***"), "");
        assert_eq!(label(&"x".repeat(100)).len(), MAX_LABEL);
        assert_eq!(
            label(&format!("{}-b", "a".repeat(62))),
            "a".repeat(62),
            "no dash left at the cut"
        );
    }

    #[test]
    fn marathon_group_paths_become_one_label() {
        // Marathon names the task of app `/prod/web` `web.prod`.
        assert_eq!(task_label("web.prod"), "web-prod");
        assert_eq!(task_label("My App.Team_1"), "myapp-team1");
        assert_eq!(task_label("..."), "");
        assert_eq!(domain_fragment("Marathon"), "marathon");
        assert_eq!(domain_fragment("a.B c..d"), "a.bc.d");
    }

    #[test]
    fn canonical_parts() {
        assert_eq!(agent_id_tail("master-20150126-S1"), "s1");
        assert_eq!(agent_id_tail("S7"), "s7");
        let h = task_id_hash("nginx.f6a2e1c1-a1b2");
        assert_eq!(h.len(), 5);
        assert!(h.chars().all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)));
        assert_eq!(h, task_id_hash("nginx.f6a2e1c1-a1b2"));
        assert_ne!(h, task_id_hash("nginx.f6a2e1c1-a1b3"));
        // RFC 4648's test vectors, lower case and unpadded.
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32(b"f"), "my");
        assert_eq!(canonical("Web.Marathon.MESOS"), "web.marathon.mesos.");
    }
}
