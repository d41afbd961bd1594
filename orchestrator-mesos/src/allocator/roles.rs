//! The role tree: weights, quotas and what each role (with its descendants)
//! holds. `a/b` is a child of `a`; `*` is a top-level role like any other.

use std::collections::HashMap;

use orchestrator_core::{Error, Name, Result};

use super::index::{ClientIx, IxVec, RoleIx};
use super::quantities::Quantities;

#[derive(Debug)]
pub(crate) struct Role {
    pub(crate) name: Name,
    pub(crate) parent: Option<RoleIx>,
    pub(crate) children: Vec<RoleIx>,
    pub(crate) weight: f64,
    pub(crate) guarantee: Quantities,
    /// Per name; `None` for names without a limit.
    pub(crate) limit: Vec<Option<i64>>,
    /// Allocated to the role and its descendants.
    pub(crate) subtree: Quantities,
    /// Allocated to frameworks directly in this role.
    pub(crate) own: Quantities,
    /// Framework-role clients directly in this role.
    pub(crate) clients: Vec<ClientIx>,
}

impl Role {
    pub(crate) fn below_guarantee(&self) -> bool {
        self.guarantee.iter().any(|(i, g)| g > self.subtree.get(i))
    }

    /// What the role still needs to reach its guarantee.
    pub(crate) fn unmet_guarantee(&self) -> Quantities {
        let mut q = Quantities::default();
        for (i, g) in self.guarantee.iter() {
            q.add_at(i, (g - self.subtree.get(i)).max(0));
        }
        q
    }

    pub(crate) fn limit_of(&self, i: usize) -> Option<i64> {
        self.limit.get(i).copied().flatten()
    }
}

/// Checks a role name as Mesos does.
pub(crate) fn validate_role(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::Invalid {
            what: "role",
            reason: format!("`{name}` {reason}"),
        })
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name == "*" {
        return Ok(());
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return bad("has an empty path component");
    }
    for part in name.split('/') {
        if part == "." || part == ".." || part == "*" {
            return bad("has a reserved path component");
        }
        if part.starts_with('-') {
            return bad("has a component starting with `-`");
        }
        if part.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("contains whitespace or control characters");
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
pub(crate) struct Roles {
    pub(crate) roles: IxVec<RoleIx, Role>,
    index: HashMap<String, RoleIx>,
    /// Top-level roles.
    pub(crate) top: Vec<RoleIx>,
}

impl Roles {
    pub(crate) fn get(&self, name: &str) -> Option<RoleIx> {
        self.index.get(name).copied()
    }

    /// The role named `name`, created with its ancestors if needed.
    pub(crate) fn ensure(&mut self, name: &str) -> Result<RoleIx> {
        if let Some(i) = self.get(name) {
            return Ok(i);
        }
        validate_role(name)?;
        let parent = match name.rfind('/') {
            Some(cut) => Some(self.ensure(&name[..cut])?),
            None => None,
        };
        let idx = self.roles.push(Role {
            name: Name::from(name),
            parent,
            children: Vec::new(),
            weight: 1.0,
            guarantee: Quantities::default(),
            limit: Vec::new(),
            subtree: Quantities::default(),
            own: Quantities::default(),
            clients: Vec::new(),
        });
        match parent {
            Some(p) => self.roles[p].children.push(idx),
            None => self.top.push(idx),
        }
        self.index.insert(name.to_string(), idx);
        Ok(idx)
    }

    /// `role` and its ancestors, nearest first.
    pub(crate) fn chain(&self, role: RoleIx) -> impl Iterator<Item = RoleIx> + '_ {
        std::iter::successors(Some(role), |r| self.roles[*r].parent)
    }

    pub(crate) fn allocate(&mut self, role: RoleIx, q: &Quantities) {
        self.roles[role].own.add(q);
        let mut r = Some(role);
        while let Some(i) = r {
            self.roles[i].subtree.add(q);
            r = self.roles[i].parent;
        }
    }

    pub(crate) fn unallocate(&mut self, role: RoleIx, q: &Quantities) {
        self.roles[role].own.sub(q);
        let mut r = Some(role);
        while let Some(i) = r {
            self.roles[i].subtree.sub(q);
            r = self.roles[i].parent;
        }
    }

    /// How much more of name `i` the role may take under its own and its
    /// ancestors' limits (`None`: unlimited).
    pub(crate) fn headroom_under_limits(&self, role: RoleIx, i: usize) -> Option<i64> {
        self.chain(role)
            .filter_map(|r| {
                self.roles[r]
                    .limit_of(i)
                    .map(|l| (l - self.roles[r].subtree.get(i)).max(0))
            })
            .min()
    }

    /// Whether the role or an ancestor is below its guarantee.
    pub(crate) fn chain_below_guarantee(&self, role: RoleIx) -> bool {
        self.chain(role).any(|r| self.roles[r].below_guarantee())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_follow_mesos_rules() {
        for good in ["*", "web", "eng/web", "a.b-c_d"] {
            validate_role(good).unwrap();
        }
        for bad in ["", "/a", "a/", "a//b", "a/./b", "..", "-a", "a b", "a/*"] {
            assert!(validate_role(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hierarchy_accumulates_allocation() {
        let mut roles = Roles::default();
        let ab = roles.ensure("a/b").unwrap();
        let a = roles.get("a").unwrap();
        assert_eq!(roles.roles[ab].parent, Some(a));
        assert_eq!(roles.top, vec![a]);
        let mut q = Quantities::default();
        q.add_at(0, 5);
        roles.allocate(ab, &q);
        assert_eq!(roles.roles[a].subtree.get(0), 5);
        assert_eq!(roles.roles[a].own.get(0), 0);
        roles.roles[a].limit = vec![Some(7)];
        assert_eq!(roles.headroom_under_limits(ab, 0), Some(2));
        assert_eq!(roles.headroom_under_limits(ab, 1), None);
        roles.unallocate(ab, &q);
        assert!(roles.roles[a].subtree.is_zero());
    }
}
