//! Administrators' security roles and what each may do — Configuration Manager's built-in
//! roles that matter for software updates. A route states the one permission it needs; a
//! role is the set of permissions it grants.

use std::fmt;

/// One thing an administrator may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read the catalog, clients, status messages, reports, the audit log.
    Read,
    /// Start a synchronization.
    Sync,
    /// Approve, revoke and issue enrollment tokens for clients.
    ManageClients,
    /// Create, change and delete deployments (authorize updates).
    Deploy,
    /// Distribute content, manage distribution points.
    ManageContent,
    /// Create collections and change their members.
    ManageCollections,
    /// Change the site's configuration and hierarchy.
    ManageSite,
    /// Create administrators, set roles and scopes.
    ManageAdministrators,
}

impl Permission {
    /// Every permission, in the order roles are usually described.
    pub const ALL: [Permission; 8] = [
        Permission::Read,
        Permission::Sync,
        Permission::ManageClients,
        Permission::Deploy,
        Permission::ManageContent,
        Permission::ManageCollections,
        Permission::ManageSite,
        Permission::ManageAdministrators,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Sync => "sync",
            Permission::ManageClients => "manage clients",
            Permission::Deploy => "deploy updates",
            Permission::ManageContent => "manage content",
            Permission::ManageCollections => "manage collections",
            Permission::ManageSite => "manage the site",
            Permission::ManageAdministrators => "manage administrators",
        }
    }
}

/// A security role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    FullAdministrator,
    SoftwareUpdateManager,
    OperationsAdministrator,
    ReadOnlyAnalyst,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::FullAdministrator,
        Role::SoftwareUpdateManager,
        Role::OperationsAdministrator,
        Role::ReadOnlyAnalyst,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::FullAdministrator => "Full Administrator",
            Role::SoftwareUpdateManager => "Software Update Manager",
            Role::OperationsAdministrator => "Operations Administrator",
            Role::ReadOnlyAnalyst => "Read-only Analyst",
        }
    }

    /// Parses a role by its name, case and separators ignored ("read-only analyst",
    /// "ReadOnlyAnalyst", "full_administrator").
    pub fn parse(s: &str) -> Option<Role> {
        let key = |s: &str| {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase()
        };
        let k = key(s);
        Role::ALL.into_iter().find(|r| key(r.name()) == k)
    }

    /// Whether the role grants `p`.
    ///
    /// - Full Administrator: everything.
    /// - Software Update Manager: sync, deploy, content, clients, collections — not the
    ///   site or administrators.
    /// - Operations Administrator: run the site (sync, content, clients, collections, site
    ///   settings) — not deployments or administrators.
    /// - Read-only Analyst: read.
    pub fn grants(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::FullAdministrator => true,
            Role::SoftwareUpdateManager => {
                matches!(
                    p,
                    Read | Sync | Deploy | ManageContent | ManageClients | ManageCollections
                )
            }
            Role::OperationsAdministrator => {
                matches!(
                    p,
                    Read | Sync | ManageContent | ManageClients | ManageCollections | ManageSite
                )
            }
            Role::ReadOnlyAnalyst => p == Read,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.name()), Some(r));
        }
        assert_eq!(
            Role::parse("read-only analyst"),
            Some(Role::ReadOnlyAnalyst)
        );
        assert_eq!(
            Role::parse("full_administrator"),
            Some(Role::FullAdministrator)
        );
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn read_only_reads_only() {
        use Permission::*;
        for p in [
            Sync,
            ManageClients,
            Deploy,
            ManageContent,
            ManageSite,
            ManageAdministrators,
        ] {
            assert!(!Role::ReadOnlyAnalyst.grants(p), "{p:?}");
            assert!(Role::FullAdministrator.grants(p));
        }
        assert!(Role::ReadOnlyAnalyst.grants(Read));
        assert!(!Role::SoftwareUpdateManager.grants(ManageAdministrators));
        assert!(!Role::OperationsAdministrator.grants(Deploy));
    }
}
