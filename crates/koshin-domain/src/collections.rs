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

/// A collection's rules: who its members are besides its direct members. Every saved
/// version of them is kept (P19), and a rollback saves an earlier version again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// A query (docs/inventory.md) in its canonical form; clients that match are members.
    pub query: Option<String>,
    /// The collection (by id) members are drawn from; `None` is All Systems.
    pub limiting: Option<String>,
    /// Collections (by id) whose members are members too.
    pub includes: Vec<String>,
    /// Collections (by id) whose members never are.
    pub excludes: Vec<String>,
}

impl Rules {
    /// The collections these rules read, each once.
    pub fn depends_on(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let all = self
            .limiting
            .iter()
            .chain(&self.includes)
            .chain(&self.excludes);
        for id in all {
            if id != ALL_SYSTEMS_ID && !out.contains(&id.as_str()) {
                out.push(id);
            }
        }
        out
    }
}

/// The order to evaluate collections in, so that every collection comes after the ones its
/// rules read: `deps[i]` are the ids collection `ids[i]` reads (ids not in `ids` are read as
/// they stand). A cycle is an error naming a collection on it.
pub fn evaluation_order(ids: &[String], deps: &[Vec<String>]) -> Result<Vec<usize>, String> {
    // 0 = not visited, 1 = on the current path, 2 = done.
    let mut mark = vec![0u8; ids.len()];
    let mut out = Vec::with_capacity(ids.len());
    for start in 0..ids.len() {
        if mark[start] != 0 {
            continue;
        }
        // An explicit stack of (collection, next dependency to look at).
        let mut stack = vec![(start, 0usize)];
        mark[start] = 1;
        while let Some((node, next)) = stack.pop() {
            let Some(dep) = deps.get(node).and_then(|d| d.get(next)) else {
                mark[node] = 2;
                out.push(node);
                continue;
            };
            stack.push((node, next + 1));
            if let Some(d) = ids.iter().position(|i| i == dep) {
                match mark[d] {
                    0 => {
                        mark[d] = 1;
                        stack.push((d, 0));
                    }
                    1 => return Err(ids[d].clone()),
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

/// How a client is a member of a collection, as `collections show` says it.
pub const VIA_DIRECT: &str = "direct";
pub const VIA_QUERY: &str = "query";
pub const VIA_INCLUDE: &str = "include";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_are_evaluated_after_what_they_read_and_cycles_are_named() {
        let ids: Vec<String> = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
        // A reads B, B reads C.
        let deps = vec![vec!["B".to_string()], vec!["C".to_string()], vec![]];
        let order = evaluation_order(&ids, &deps).expect("no cycle");
        let pos = |i: usize| order.iter().position(|&o| o == i).expect("listed");
        assert_eq!(order.len(), 3);
        assert!(pos(2) < pos(1) && pos(1) < pos(0));
        // C reads A: a cycle.
        let deps = vec![
            vec!["B".to_string()],
            vec!["C".to_string()],
            vec!["A".to_string(), "SMS00001".to_string()],
        ];
        assert!(evaluation_order(&ids, &deps).is_err());
        let rules = Rules {
            query: None,
            limiting: Some(ALL_SYSTEMS_ID.into()),
            includes: vec!["B".into(), "B".into()],
            excludes: vec!["C".into()],
        };
        assert_eq!(rules.depends_on(), vec!["B", "C"]);
    }

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
