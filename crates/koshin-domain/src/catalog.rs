//! The update catalog: what an update is, how the catalog is derived from upstream package
//! lists, and how a sync's result is compared with the stored catalog (new, revised,
//! expired, superseded) — the rules of requirements S1, S2 and product.md's Debian mapping.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::localpub::LocalUpdate;
use crate::sync::SyncKind;
use crate::version;

/// Namespace of koshin's name-based update ids: the same update has the same id at every
/// site and across syncs.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b6f_7368_696e_4000_8000_7570_6461_7465);

/// The stable id of an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UpdateId(pub Uuid);

impl UpdateId {
    pub fn for_apt(product: &str, source: &str, version: &str) -> Self {
        UpdateId(Uuid::new_v5(
            &ID_NAMESPACE,
            format!("apt\0{product}\0{source}\0{version}").as_bytes(),
        ))
    }
    pub fn for_local(vendor: &str, article_id: &str) -> Self {
        UpdateId(Uuid::new_v5(
            &ID_NAMESPACE,
            format!("local\0{vendor}\0{article_id}").as_bytes(),
        ))
    }
}

impl fmt::Display for UpdateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The seeds' update classifications. The APT mapping uses two of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Classification {
    #[serde(rename = "Security Updates")]
    SecurityUpdates,
    #[serde(rename = "Critical Updates")]
    CriticalUpdates,
    #[serde(rename = "Updates")]
    Updates,
    #[serde(rename = "Update Rollups")]
    UpdateRollups,
    #[serde(rename = "Feature Packs")]
    FeaturePacks,
    #[serde(rename = "Tools")]
    Tools,
}

impl Classification {
    pub const ALL: [Classification; 6] = [
        Classification::SecurityUpdates,
        Classification::CriticalUpdates,
        Classification::Updates,
        Classification::UpdateRollups,
        Classification::FeaturePacks,
        Classification::Tools,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Classification::SecurityUpdates => "Security Updates",
            Classification::CriticalUpdates => "Critical Updates",
            Classification::Updates => "Updates",
            Classification::UpdateRollups => "Update Rollups",
            Classification::FeaturePacks => "Feature Packs",
            Classification::Tools => "Tools",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s.trim()))
    }
    /// product.md: "Security Updates" for a `*-security` suite, "Updates" otherwise.
    pub fn for_suite(suite: &str) -> Self {
        let s = suite.trim_end_matches('/');
        if s.ends_with("-security") || s.ends_with("/updates") {
            Classification::SecurityUpdates
        } else {
            Classification::Updates
        }
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The product of the local publisher (S12): selecting it syncs custom updates.
pub const LOCAL_PUBLISHER_PRODUCT: &str = "Local publisher";

/// Names the product of a suite from its Release fields: "Debian 12 (bookworm)".
pub fn product_name(origin: &str, version: &str, codename: &str) -> String {
    let major: String = version
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let major = if origin.eq_ignore_ascii_case("debian") {
        major.split('.').next().unwrap_or("").to_string()
    } else {
        major
    };
    let codename = codename.split(['-', '/']).next().unwrap_or(codename);
    let origin = if origin.is_empty() { "Unknown" } else { origin };
    match (major.is_empty(), codename.is_empty()) {
        (false, false) => format!("{origin} {major} ({codename})"),
        (true, false) => format!("{origin} ({codename})"),
        (false, true) => format!("{origin} {major}"),
        (true, true) => origin.to_string(),
    }
}

/// A binary package as read from a `Packages` index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub source: String,
    pub source_version: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    pub section: String,
    pub priority: String,
    pub description: String,
}

/// What a sync knows of one upstream suite: its product and classification, and its packages.
#[derive(Clone, Debug)]
pub struct SuiteIndex {
    pub product: String,
    pub suite: String,
    pub classification: Classification,
    /// Release `Date:` as Unix seconds (the "released" date of updates first seen in it).
    pub date: i64,
    pub packages: Vec<BinaryPackage>,
}

/// One binary of an update: the version a client must reach.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UpdateBinary {
    pub name: String,
    pub architecture: String,
    pub version: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

/// An update as the upstream describes it now, before it meets the stored catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateCandidate {
    pub id: UpdateId,
    pub product: String,
    pub classification: Classification,
    pub title: String,
    pub description: String,
    pub vendor: String,
    pub article_id: String,
    pub bulletin_id: Option<String>,
    pub severity: Option<String>,
    /// Source package name and version (APT); for local updates, vendor and article.
    pub source: String,
    pub version: String,
    pub released: i64,
    pub binaries: Vec<UpdateBinary>,
    pub local: Option<LocalUpdate>,
}

impl UpdateCandidate {
    /// A digest of everything that makes up the update's metadata: a change bumps the revision.
    pub fn metadata_hash(&self) -> String {
        let mut h = Sha256::new();
        let mut put = |s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        put(&self.product);
        put(self.classification.name());
        put(&self.title);
        put(&self.description);
        put(&self.vendor);
        put(&self.article_id);
        put(self.bulletin_id.as_deref().unwrap_or(""));
        put(self.severity.as_deref().unwrap_or(""));
        for b in &self.binaries {
            put(&b.name);
            put(&b.architecture);
            put(&b.version);
            put(&b.filename);
            put(&b.size.to_string());
            put(&b.sha256);
        }
        if let Some(local) = &self.local {
            put(&serde_json::to_string(local).unwrap_or_default());
        }
        hex::encode(&h.finalize()[..16])
    }

    /// Updates that can supersede each other share this key (same product and source).
    pub fn supersedence_group(&self) -> Option<String> {
        if self.local.is_some() {
            None
        } else {
            Some(format!("{}\0{}", self.product, self.source))
        }
    }
}

/// What the sync criteria (S1) select.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Criteria {
    /// Product names, or "*" for every product the upstreams provide.
    pub products: Vec<String>,
    pub classifications: Vec<Classification>,
    pub languages: Vec<String>,
}

impl Criteria {
    pub fn selects_product(&self, product: &str) -> bool {
        self.products
            .iter()
            .any(|p| p == "*" || p.eq_ignore_ascii_case(product))
    }
    /// The local publisher is synced only when named explicitly or by "*" (S12).
    pub fn selects(&self, c: &UpdateCandidate) -> bool {
        let lang_ok = match c.local.as_ref().and_then(|l| l.language.as_deref()) {
            Some(lang) => self.languages.iter().any(|l| l.eq_ignore_ascii_case(lang)),
            None => true,
        };
        self.selects_product(&c.product)
            && self.classifications.contains(&c.classification)
            && lang_ok
    }
}

/// Groups binaries into updates: one update per source package version per product.
pub fn derive_apt_updates(suites: &[SuiteIndex]) -> Vec<UpdateCandidate> {
    struct Acc<'a> {
        classification: Classification,
        released: i64,
        binaries: BTreeMap<(&'a str, &'a str, &'a str), &'a BinaryPackage>,
    }
    let mut groups: HashMap<(&str, &str, &str), Acc> = HashMap::new();
    for suite in suites {
        for p in &suite.packages {
            let key = (
                suite.product.as_str(),
                p.source.as_str(),
                p.source_version.as_str(),
            );
            let acc = groups.entry(key).or_insert_with(|| Acc {
                classification: suite.classification,
                released: suite.date,
                binaries: BTreeMap::new(),
            });
            if suite.classification == Classification::SecurityUpdates {
                acc.classification = Classification::SecurityUpdates;
            }
            acc.released = acc.released.min(suite.date);
            acc.binaries
                .entry((p.name.as_str(), p.architecture.as_str(), p.version.as_str()))
                .or_insert(p);
        }
    }
    let mut out: Vec<UpdateCandidate> = groups
        .into_iter()
        .map(|((product, source, version), acc)| {
            let description = acc
                .binaries
                .values()
                .find(|b| b.name == source)
                .or_else(|| acc.binaries.values().next())
                .map(|b| b.description.clone())
                .unwrap_or_default();
            UpdateCandidate {
                id: UpdateId::for_apt(product, source, version),
                product: product.to_string(),
                classification: acc.classification,
                title: format!("{source} {version}"),
                description,
                vendor: product.split(' ').next().unwrap_or("").to_string(),
                article_id: format!("{source}/{version}"),
                bulletin_id: None,
                severity: None,
                source: source.to_string(),
                version: version.to_string(),
                released: acc.released,
                binaries: acc
                    .binaries
                    .values()
                    .map(|b| UpdateBinary {
                        name: b.name.clone(),
                        architecture: b.architecture.clone(),
                        version: b.version.clone(),
                        filename: b.filename.clone(),
                        size: b.size,
                        sha256: b.sha256.clone(),
                    })
                    .collect(),
                local: None,
            }
        })
        .collect();
    out.sort_by_key(|c| c.id);
    out
}

/// What the site database holds of one update, as far as a sync needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredUpdate {
    pub id: UpdateId,
    pub revision: u32,
    pub metadata_hash: String,
    pub expired: bool,
    pub superseded_by: Option<UpdateId>,
    pub group: Option<String>,
    pub version: String,
}

/// The changes a sync makes to the site database.
#[derive(Clone, Debug, Default)]
pub struct SyncPlan {
    /// New updates, revision 1.
    pub inserts: Vec<UpdateCandidate>,
    /// Changed metadata: (candidate, new revision).
    pub revisions: Vec<(UpdateCandidate, u32)>,
    /// Gone from the upstream at a full sync.
    pub expire: Vec<UpdateId>,
    /// Back upstream after being expired (full sync only).
    pub unexpire: Vec<UpdateId>,
    /// New `superseded_by` values, for updates whose supersedence changed.
    pub supersedence: Vec<(UpdateId, Option<UpdateId>)>,
}

impl SyncPlan {
    /// The number of distinct updates the plan changes (the seeds' "Updated N items").
    pub fn changed_items(&self) -> usize {
        let mut ids: Vec<UpdateId> = self
            .inserts
            .iter()
            .map(|c| c.id)
            .chain(self.revisions.iter().map(|(c, _)| c.id))
            .chain(self.expire.iter().copied())
            .chain(self.unexpire.iter().copied())
            .chain(self.supersedence.iter().map(|(id, _)| *id))
            .collect();
        ids.sort();
        ids.dedup();
        ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.changed_items() == 0
    }
}

/// Compares the upstream's updates with the stored catalog (S2): a full sync inserts new,
/// revises changed, expires removed; a delta sync only inserts new. Both recompute
/// supersedence: the newest unexpired version of a source supersedes the older ones.
///
/// `upstream` holds the updates the criteria select; `present` every update id the upstream
/// holds now, selected or not: an update expires only when it is gone from the upstream, not
/// when the criteria stop selecting it.
pub fn plan_sync(
    kind: SyncKind,
    stored: &[StoredUpdate],
    upstream: Vec<UpdateCandidate>,
    present: &std::collections::HashSet<UpdateId>,
) -> SyncPlan {
    let by_id: HashMap<UpdateId, &StoredUpdate> = stored.iter().map(|s| (s.id, s)).collect();
    let mut plan = SyncPlan::default();
    // (id, group, version, expired) after the plan is applied.
    let mut after: HashMap<UpdateId, (Option<String>, String, bool)> = stored
        .iter()
        .map(|s| (s.id, (s.group.clone(), s.version.clone(), s.expired)))
        .collect();
    for c in upstream {
        match by_id.get(&c.id) {
            None => {
                after.insert(c.id, (c.supersedence_group(), c.version.clone(), false));
                plan.inserts.push(c);
            }
            Some(s) if kind == SyncKind::Full => {
                if s.expired {
                    plan.unexpire.push(c.id);
                    if let Some(a) = after.get_mut(&c.id) {
                        a.2 = false;
                    }
                }
                if s.metadata_hash != c.metadata_hash() {
                    let rev = s.revision + 1;
                    plan.revisions.push((c, rev));
                }
            }
            Some(_) => {}
        }
    }
    if kind == SyncKind::Full {
        for s in stored {
            if !s.expired && !present.contains(&s.id) {
                plan.expire.push(s.id);
                if let Some(a) = after.get_mut(&s.id) {
                    a.2 = true;
                }
            }
        }
    }
    // Supersedence over the catalog as it will be.
    let mut newest: HashMap<&str, (UpdateId, &str)> = HashMap::new();
    for (id, (group, version, expired)) in &after {
        let (Some(group), false) = (group.as_deref(), *expired) else {
            continue;
        };
        match newest.get(group) {
            Some((_, v)) if version::compare_lenient(version, v) != std::cmp::Ordering::Greater => {
            }
            _ => {
                newest.insert(group, (*id, version.as_str()));
            }
        }
    }
    let current: HashMap<UpdateId, Option<UpdateId>> =
        stored.iter().map(|s| (s.id, s.superseded_by)).collect();
    let mut changes: Vec<(UpdateId, Option<UpdateId>)> = Vec::new();
    for (id, (group, _version, _expired)) in &after {
        let want = group
            .as_deref()
            .and_then(|g| newest.get(g))
            .map(|(nid, _)| *nid)
            .filter(|nid| nid != id);
        let have = current.get(id).copied().flatten();
        if want != have {
            changes.push((*id, want));
        }
    }
    changes.sort();
    plan.supersedence = changes;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan where the upstream holds exactly the candidates given.
    fn plan_of(kind: SyncKind, stored: &[StoredUpdate], up: Vec<UpdateCandidate>) -> SyncPlan {
        let ids = up.iter().map(|c| c.id).collect();
        plan_sync(kind, stored, up, &ids)
    }

    fn pkg(name: &str, version: &str, source: &str, sv: &str) -> BinaryPackage {
        BinaryPackage {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            source: source.into(),
            source_version: sv.into(),
            filename: format!("pool/main/{name}_{version}_amd64.deb"),
            size: 100,
            sha256: "00".into(),
            section: "utils".into(),
            priority: "optional".into(),
            description: format!("{name} tool"),
        }
    }

    fn suite(name: &str, packages: Vec<BinaryPackage>) -> SuiteIndex {
        SuiteIndex {
            product: product_name("Debian", "12.5", name),
            suite: name.into(),
            classification: Classification::for_suite(name),
            date: 1_700_000_000,
            packages,
        }
    }

    fn stored(c: &UpdateCandidate, superseded_by: Option<UpdateId>) -> StoredUpdate {
        StoredUpdate {
            id: c.id,
            revision: 1,
            metadata_hash: c.metadata_hash(),
            expired: false,
            superseded_by,
            group: c.supersedence_group(),
            version: c.version.clone(),
        }
    }

    #[test]
    fn names_products_and_classifications() {
        assert_eq!(
            product_name("Debian", "12.15", "bookworm"),
            "Debian 12 (bookworm)"
        );
        assert_eq!(
            product_name("Debian", "12-updates", "bookworm-updates"),
            "Debian 12 (bookworm)"
        );
        assert_eq!(
            product_name("Debian", "12", "bookworm-security"),
            "Debian 12 (bookworm)"
        );
        assert_eq!(
            product_name("Ubuntu", "24.04", "noble"),
            "Ubuntu 24.04 (noble)"
        );
        assert_eq!(
            Classification::for_suite("bookworm-security"),
            Classification::SecurityUpdates
        );
        assert_eq!(
            Classification::for_suite("bookworm-updates"),
            Classification::Updates
        );
    }

    #[test]
    fn one_update_per_source_version_with_binnmus() {
        let s = suite(
            "bookworm",
            vec![
                pkg("hello", "2.10-3+b1", "hello", "2.10-3"),
                pkg("hello-doc", "2.10-3", "hello", "2.10-3"),
                pkg("libfoo1", "1.0-1", "foo", "1.0-1"),
            ],
        );
        let sec = suite(
            "bookworm-security",
            vec![pkg("libfoo1", "1.0-1+deb12u1", "foo", "1.0-1+deb12u1")],
        );
        let u = derive_apt_updates(&[s, sec]);
        assert_eq!(u.len(), 3);
        let hello = u.iter().find(|c| c.source == "hello").unwrap();
        assert_eq!(hello.binaries.len(), 2);
        assert_eq!(hello.classification, Classification::Updates);
        assert_eq!(
            hello.id,
            UpdateId::for_apt("Debian 12 (bookworm)", "hello", "2.10-3")
        );
        let fixed = u.iter().find(|c| c.version == "1.0-1+deb12u1").unwrap();
        assert_eq!(fixed.classification, Classification::SecurityUpdates);
    }

    #[test]
    fn delta_inserts_only_new_and_supersedes() {
        let old = derive_apt_updates(&[suite("bookworm", vec![pkg("a", "1", "a", "1")])]);
        let store: Vec<_> = old.iter().map(|c| stored(c, None)).collect();
        let newer = derive_apt_updates(&[suite("bookworm", vec![pkg("a", "2", "a", "2")])]);
        let plan = plan_of(SyncKind::Delta, &store, newer.clone());
        assert_eq!(plan.inserts.len(), 1);
        assert!(plan.expire.is_empty());
        assert_eq!(plan.supersedence, vec![(old[0].id, Some(newer[0].id))]);
        // Nothing new: an empty plan.
        let plan = plan_of(SyncKind::Delta, &store, old.clone());
        assert!(plan.is_empty());
    }

    #[test]
    fn full_expires_removed_and_revises_changed() {
        let old = derive_apt_updates(&[suite(
            "bookworm",
            vec![pkg("a", "1", "a", "1"), pkg("b", "1", "b", "1")],
        )]);
        let store: Vec<_> = old.iter().map(|c| stored(c, None)).collect();
        let mut changed = pkg("a", "1", "a", "1");
        changed.size = 200;
        let up = derive_apt_updates(&[suite("bookworm", vec![changed])]);
        let plan = plan_of(SyncKind::Full, &store, up.clone());
        assert_eq!(plan.revisions.len(), 1);
        assert_eq!(plan.revisions[0].1, 2);
        let b = old.iter().find(|c| c.source == "b").unwrap();
        assert_eq!(plan.expire, vec![b.id]);
        // Delta ignores the change and the removal.
        assert!(plan_of(SyncKind::Delta, &store, up).is_empty());
    }

    #[test]
    fn updates_no_longer_selected_but_still_upstream_do_not_expire() {
        let old = derive_apt_updates(&[suite(
            "bookworm",
            vec![pkg("a", "1", "a", "1"), pkg("b", "1", "b", "1")],
        )]);
        let store: Vec<_> = old.iter().map(|c| stored(c, None)).collect();
        let present = old.iter().map(|c| c.id).collect();
        let selected: Vec<_> = old.iter().filter(|c| c.source == "a").cloned().collect();
        assert!(plan_sync(SyncKind::Full, &store, selected, &present).is_empty());
    }
}
