//! Collections — the sets of clients that deployments target and administrators' scopes are
//! drawn from — and what an administrator's scope means. The built-in "All Systems" holds
//! every client of the site and keeps Configuration Manager's id, SMS00001; collections an
//! administrator creates get the site code and a number (`CEN00002`).

/// The id of the built-in collection of every client.
pub const ALL_SYSTEMS_ID: &str = "SMS00001";
/// Its name.
pub const ALL_SYSTEMS_NAME: &str = "All Systems";

/// The id of a collection created at a site: the site code and a five-digit number.
pub fn collection_id(site_code: &str, number: i64) -> String {
    format!("{site_code}{number:05}")
}

/// Which clients an administrator may see and act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every client: an administrator without scopes, or one scoped to All Systems.
    All,
    /// Only the members of these collections (by collection id).
    Collections(Vec<String>),
}

impl Scope {
    /// The scope of an administrator whose account lists these collection ids.
    pub fn of(collection_ids: &[String]) -> Scope {
        if collection_ids.is_empty() || collection_ids.iter().any(|c| c == ALL_SYSTEMS_ID) {
            Scope::All
        } else {
            Scope::Collections(collection_ids.to_vec())
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(Scope::of(&[]), Scope::All);
        assert_eq!(
            Scope::of(&["CEN00002".into(), ALL_SYSTEMS_ID.into()]),
            Scope::All
        );
        assert_eq!(
            Scope::of(&["CEN00002".into()]),
            Scope::Collections(vec!["CEN00002".into()])
        );
        assert_eq!(collection_id("CEN", 2), "CEN00002");
    }
}
