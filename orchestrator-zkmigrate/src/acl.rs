//! Whether the target's identity may make a plan's writes, checked before
//! the first one.
//!
//! ACLs are copied exactly (digest ids keep their hashes, `world` and `ip`
//! entries stay as they are), so a copied parent may well deny the
//! identity doing the copy the right to create its children, and a
//! protected target node may deny it the right to change it. Found out by
//! the write that fails, that would leave the target half-copied; so every
//! write is checked first against the ACL it will meet (the parent's as
//! it will be by then, or the node's as it is), for the identities the
//! target's session has: `world:anyone`, one `digest` id per `digest`
//! credential (`USER:base64(sha1(USER:PASSWORD))`, as ZooKeeper derives
//! it) and `sasl:USER` for a SASL login. Entries of schemes this cannot evaluate (`ip`, `sasl`, `x509`, …)
//! are given the benefit of the doubt: the server decides those.

use base64::Engine as _;

use crate::copy::{Op, Plan};
use crate::endpoint::Credential;
use crate::tree::Snapshot;
use crate::verify::AclEntry;

/// ZooKeeper's permission bits.
pub(crate) const WRITE: u32 = 2;
pub(crate) const CREATE: u32 = 4;
pub(crate) const DELETE: u32 = 8;
pub(crate) const ADMIN: u32 = 16;

/// The `digest` id of `USER:PASSWORD`: `USER:base64(sha1(USER:PASSWORD))`.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or_default();
    let hash = sha1_smol::Sha1::from(user_password.as_bytes()).digest().bytes();
    format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(hash))
}

/// The identities a session with `credentials` (and a SASL user) has,
/// as `(scheme, id)`.
fn identities(credentials: &[Credential], sasl_user: Option<&str>) -> Vec<(String, String)> {
    let mut out = vec![("world".to_string(), "anyone".to_string())];
    for c in credentials {
        if c.scheme == "digest" {
            out.push(("digest".to_string(), digest_id(&String::from_utf8_lossy(&c.auth))));
        }
    }
    if let Some(user) = sasl_user {
        out.push(("sasl".to_string(), user.to_string()));
    }
    out
}

/// Whether `acl` grants `perm` to any of `ids`; entries of schemes that
/// cannot be evaluated here count as granting it.
fn grants(acl: &[AclEntry], ids: &[(String, String)], perm: u32) -> bool {
    acl.iter().any(|e| {
        e.perms & perm == perm
            && match e.scheme.as_str() {
                "world" | "digest" | "sasl" => ids.iter().any(|(s, id)| *s == e.scheme && *id == e.id),
                // `auth` never appears in a stored ACL; anything else
                // (ip, sasl, x509, custom providers) is the server's call.
                _ => true,
            }
    })
}

fn parent(rel: &str) -> Option<&str> {
    match rel.rfind('/') {
        Some(0) if rel.len() > 1 => Some("/"),
        Some(i) if i > 0 => Some(&rel[..i]),
        _ => None,
    }
}

fn perm_name(perm: u32) -> &'static str {
    match perm {
        WRITE => "WRITE",
        CREATE => "CREATE",
        DELETE => "DELETE",
        ADMIN => "ADMIN",
        _ => "the permission",
    }
}

/// Every write of `plan` the target's identity (from `credentials`) may not
/// make, as `path: what is denied`. The ACL a created node's parent will
/// have is the source's when the plan creates or re-ACLs the parent, else
/// the target's; the root's own parent is outside the tree and not judged.
pub fn denied(
    plan: &Plan,
    source: &Snapshot,
    target: &Snapshot,
    credentials: &[Credential],
    sasl_user: Option<&str>,
    abs: impl Fn(&str) -> String,
) -> Vec<String> {
    let ids = identities(credentials, sasl_user);
    let created: std::collections::HashSet<&str> = plan
        .ops
        .iter()
        .filter(|op| matches!(op, Op::Create { .. } | Op::Recreate { .. }))
        .map(Op::path)
        .collect();
    let reacled: std::collections::HashSet<&str> = plan
        .ops
        .iter()
        .filter(|op| matches!(op, Op::SetAcl { .. }))
        .map(Op::path)
        .collect();
    let creates_or_reacls = |rel: &str| created.contains(rel) || reacled.contains(rel);
    // The ACL a node has when its children are written: creates come
    // before ACL changes, so a node only re-ACLed still has its old one.
    let acl_for_children = |rel: &str| -> Option<&Vec<AclEntry>> {
        if created.contains(rel) {
            source.nodes.get(rel).map(|n| &n.acl)
        } else {
            target.nodes.get(rel).map(|n| &n.acl)
        }
    };
    let mut out = Vec::new();
    let mut need = |rel: &str, acl: Option<&Vec<AclEntry>>, perm: u32, what: &str, on: &str| {
        if let Some(acl) = acl {
            if !grants(acl, &ids, perm) {
                out.push(format!(
                    "{}: {what} needs {} on {}, which its ACL does not grant this identity",
                    abs(rel),
                    perm_name(perm),
                    abs(on)
                ));
            }
        }
    };
    for op in &plan.ops {
        let rel = op.path();
        match op {
            Op::Create { .. } | Op::Recreate { .. } => {
                if let Some(p) = parent(rel) {
                    need(rel, acl_for_children(p), CREATE, "creating it", p);
                }
                if matches!(op, Op::Recreate { .. }) {
                    if let Some(p) = parent(rel) {
                        need(rel, target.nodes.get(p).map(|n| &n.acl), DELETE, "replacing it", p);
                    }
                }
            }
            Op::SetData { .. } => need(
                rel,
                target.nodes.get(rel).map(|n| &n.acl),
                WRITE,
                "setting its data",
                rel,
            ),
            Op::SetAcl { .. } => need(
                rel,
                target.nodes.get(rel).map(|n| &n.acl),
                ADMIN,
                "setting its ACL",
                rel,
            ),
            Op::Delete { .. } => {
                if let Some(p) = parent(rel) {
                    need(rel, target.nodes.get(p).map(|n| &n.acl), DELETE, "deleting it", p);
                }
            }
            Op::AdvanceSequence { .. } => {
                let acl = if creates_or_reacls(rel) {
                    source.nodes.get(rel).map(|n| &n.acl)
                } else {
                    target.nodes.get(rel).map(|n| &n.acl)
                };
                need(rel, acl, CREATE | DELETE, "advancing its sequence counter", rel);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::{plan, CopyOptions};
    use crate::node::{NodeStat, ZNode};
    use crate::verify::NodeKind;

    #[test]
    fn digest_ids_are_zookeepers() {
        // ZooKeeper's DigestAuthenticationProvider.generateDigest("super:test").
        assert_eq!(digest_id("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
    }

    fn node(acl: &[(u32, &str, &str)]) -> ZNode {
        ZNode {
            data: Vec::new(),
            acl: acl
                .iter()
                .map(|(perms, scheme, id)| AclEntry {
                    perms: *perms,
                    scheme: (*scheme).to_string(),
                    id: (*id).to_string(),
                })
                .collect(),
            kind: NodeKind::Persistent,
            stat: NodeStat::default(),
        }
    }

    fn snap(nodes: Vec<(&str, ZNode)>) -> Snapshot {
        Snapshot {
            nodes: nodes.into_iter().map(|(p, n)| (p.to_string(), n)).collect(),
            ..Snapshot::default()
        }
    }

    #[test]
    fn children_of_a_copied_protected_parent_need_its_credentials() {
        let alice = digest_id("alice:secret");
        let open = node(&[(31, "world", "anyone")]);
        let locked = node(&[(31, "digest", &alice)]);
        let source = snap(vec![
            ("/", open.clone()),
            ("/s", locked.clone()),
            ("/s/c", locked.clone()),
        ]);
        let target = snap(vec![("/", open.clone())]);
        let p = plan(&source, &target, &CopyOptions::default());
        let abs = |r: &str| format!("/root{r}");
        let denied_anyone = denied(&p, &source, &target, &[], None, abs);
        assert_eq!(denied_anyone.len(), 1, "{denied_anyone:?}");
        assert!(
            denied_anyone[0].starts_with("/root/s/c: creating it needs CREATE on /root/s"),
            "{denied_anyone:?}"
        );
        let as_alice = [Credential::parse("digest:alice:secret").unwrap()];
        assert!(denied(&p, &source, &target, &as_alice, None, abs).is_empty());
        // An ip entry is the server's call, not refused here.
        let by_ip = snap(vec![
            ("/", open.clone()),
            ("/s", node(&[(31, "ip", "10.0.0.0/8")])),
            ("/s/c", open),
        ]);
        let p = plan(&by_ip, &target, &CopyOptions::default());
        assert!(denied(&p, &by_ip, &target, &[], None, abs).is_empty());
    }

    #[test]
    fn changing_a_protected_target_node_needs_write_and_admin() {
        let readonly = node(&[(1, "world", "anyone")]);
        let mut changed = node(&[(31, "world", "anyone")]);
        changed.data = b"new".to_vec();
        let source = snap(vec![("/", changed)]);
        let target = snap(vec![("/", readonly)]);
        let p = plan(&source, &target, &CopyOptions::default());
        let found = denied(&p, &source, &target, &[], None, |r| r.to_string());
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("needs WRITE"), "{found:?}");
        assert!(found[1].contains("needs ADMIN"), "{found:?}");
    }
}
