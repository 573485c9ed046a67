//! The storage traits components depend on. Each is small and named for what it keeps.

use koshin_domain::Scope;
use koshin_domain::catalog::{StoredUpdate, SyncPlan};
use koshin_domain::content::{Priority, SenderSettings};
use koshin_domain::status::StatusMessage;
use koshin_domain::sync::SyncKind;
use koshin_wire::{
    BatchAck, CatalogCount, ClientCatalog, ClientDetail, ClientSummary, ComponentStatus,
    StateBatch, StatusMessageOut, StatusQuery, SyncRun, UpdateDetail, UpdateQuery, UpdateSummary,
};

use crate::Result;

/// An index a sync consumed: (source label, index path, SHA-256).
pub type SyncedIndex = (String, String, String);

/// What a successful sync writes besides the catalog changes, in the same transaction.
#[derive(Clone, Debug, Default)]
pub struct SyncCommit {
    pub now_ms: i64,
    /// Every index consumed: (source label, index path, sha256).
    pub indices: Vec<SyncedIndex>,
    /// Fingerprint of upstream state + criteria, for the no-change shortcut.
    pub fingerprint: String,
    /// A child site takes its parent's content version (S6) rather than counting its own.
    pub content_version: Option<i64>,
    /// And its token, so that a scan record of a client of the child names the same catalog
    /// at the parent.
    pub content_token: Option<String>,
    /// A replication takes the source's revision of each update (update id, revision), so
    /// a site that missed some of the source's syncs still holds the same revisions.
    pub revisions: Vec<(String, u32)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub items: usize,
    pub content_version: i64,
    pub changed: bool,
}

/// One page of a long list (an update's computers, a collection's members, a deployment's
/// clients): `limit` items after the first `offset`, in the list's order; no limit is every
/// item. The store reads only the page, and counts the rest without building it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Paging {
    pub offset: u64,
    pub limit: Option<u64>,
}

impl Paging {
    /// Every item.
    pub const ALL: Paging = Paging {
        offset: 0,
        limit: None,
    };

    /// SQLite's `LIMIT ? OFFSET ?` values (-1: no limit).
    pub fn sql(self) -> (i64, i64) {
        (
            self.limit
                .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)),
            i64::try_from(self.offset).unwrap_or(i64::MAX),
        )
    }
}

pub trait CatalogStore: Send + Sync {
    /// What a sync needs to know of every stored update.
    fn stored_updates(&self) -> Result<Vec<StoredUpdate>>;
    /// Applies a sync plan atomically; the content version increases only if it changes
    /// something. `progress(done, total)` is called as rows are written.
    fn apply_sync(
        &self,
        plan: &SyncPlan,
        commit: &SyncCommit,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ApplyOutcome>;
    fn list_updates(&self, q: &UpdateQuery) -> Result<Vec<UpdateSummary>>;
    /// By id or by unique prefix, or by article id.
    /// One update; `required_by` lists the clients of the scope that require it.
    fn get_update(&self, key: &str, scope: &Scope) -> Result<Option<UpdateDetail>> {
        Ok(self
            .get_update_page(key, scope, Paging::ALL)?
            .map(|(u, _)| u))
    }
    /// One update with one page of the clients of the scope that require it, and how many
    /// require it in all.
    fn get_update_page(
        &self,
        key: &str,
        scope: &Scope,
        page: Paging,
    ) -> Result<Option<(UpdateDetail, u64)>>;
    /// (update source id, content version).
    fn content_version(&self) -> Result<(String, i64)>;
    fn catalog_counts(&self) -> Result<Vec<CatalogCount>>;
    /// Index SHA-256s consumed by the last successful sync, and its fingerprint.
    fn synced_indices(&self) -> Result<(Vec<SyncedIndex>, Option<String>)>;
}

pub trait StatusStore: Send + Sync {
    fn insert_status(&self, m: &StatusMessage) -> Result<i64>;
    /// Status messages; a scoped administrator's leave out other clients' messages.
    fn query_status(&self, q: &StatusQuery, scope: &Scope) -> Result<Vec<StatusMessageOut>>;
    /// The component status summary: per component, system and site, the messages of each
    /// severity at or after `since_ms` (Unix milliseconds), the last of them, and the
    /// status those counts give; optionally only `component` and/or `system`
    /// (case-insensitive). Ordered by component, site and system.
    fn component_summary(
        &self,
        since_ms: i64,
        component: Option<&str>,
        system: Option<&str>,
    ) -> Result<Vec<ComponentStatus>>;
}

pub trait SyncStore: Send + Sync {
    /// Records a manual sync request (the seeds' `SyncNow = SELF`); a full request wins
    /// over a pending delta one.
    fn request_sync(&self, kind: SyncKind, now_ms: i64) -> Result<()>;
    /// Takes (and clears) the pending request.
    fn take_sync_request(&self) -> Result<Option<SyncKind>>;
    fn pending_sync_request(&self) -> Result<Option<SyncKind>>;
    fn start_run(&self, kind: SyncKind, trigger: &str, now_ms: i64) -> Result<i64>;
    fn progress_run(&self, id: i64, phase: &str, done: u64, total: u64) -> Result<()>;
    fn finish_run(
        &self,
        id: i64,
        now_ms: i64,
        error: Option<&str>,
        items: Option<u64>,
        content_version: Option<i64>,
    ) -> Result<()>;
    fn runs(&self, limit: u32) -> Result<Vec<SyncRun>>;
    /// Runs left "running" by a process that died: marked failed at start-up.
    fn fail_abandoned_runs(&self, now_ms: i64) -> Result<usize>;
    fn schedule_get(&self, name: &str) -> Result<Option<i64>>;
    fn schedule_set(&self, name: &str, at_ms: Option<i64>) -> Result<()>;
}

pub trait PolicyStore: Send + Sync {
    /// Stores the site-wide machine policy; returns its new version. The site's custom
    /// inventory classes are written into it in the same transaction, so that a class
    /// changed while the policy was being made is not lost.
    fn put_machine_policy(&self, body: &serde_json::Value, now_ms: i64) -> Result<i64>;
    fn machine_policy(&self) -> Result<Option<(i64, serde_json::Value)>>;
}

/// An administrator token, as stored (only its SHA-256).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// The collection ids the administrator is scoped to; empty for every client.
    pub scopes: Vec<String>,
}

/// An administrator account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminRecord {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// argon2 PHC string; never leaves the store except to be verified.
    pub password_hash: Option<String>,
    pub scopes: Vec<String>,
    pub created_ms: i64,
    pub created_by: String,
    pub disabled_ms: Option<i64>,
}

/// One audit log entry: who did what, when, from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub time_ms: i64,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub source: String,
}

impl AuditEntry {
    /// What the site does by itself, on a schedule (actor `site`, role `system`).
    pub fn system(action: &str, target: &str, detail: String) -> AuditEntry {
        AuditEntry {
            time_ms: jiff::Timestamp::now().as_millisecond(),
            actor: "site".into(),
            role: "system".into(),
            action: action.into(),
            target: target.into(),
            detail,
            source: "site".into(),
        }
    }
}

/// An enrollment token's record (its hash is not part of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollmentTokenRecord {
    pub id: i64,
    pub description: String,
    pub created_by: String,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub uses_left: Option<i64>,
    pub used: i64,
    pub revoked_ms: Option<i64>,
}

/// Administrators, their tokens, the audit log, enrollment tokens and client approval.
pub trait TrustStore: Send + Sync {
    fn add_admin(&self, a: &AdminRecord) -> Result<i64>;
    fn admin_by_name(&self, name: &str) -> Result<Option<AdminRecord>>;
    fn list_admins(&self) -> Result<Vec<AdminRecord>>;
    /// Disables an administrator and revokes every token of theirs.
    fn disable_admin(&self, name: &str, now_ms: i64) -> Result<bool>;
    /// A token for an administrator account, valid until `expires_ms`.
    fn add_admin_token(
        &self,
        admin_id: i64,
        token_sha256: &str,
        expires_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<i64>;
    /// Revokes one token; false when it was not valid.
    fn revoke_token(&self, token_sha256: &str, now_ms: i64) -> Result<bool>;
    fn audit(&self, e: &AuditEntry) -> Result<()>;
    /// Entries at or after `since_ms`, oldest first, at most `limit` (the newest).
    fn audit_log(&self, since_ms: i64, limit: u32) -> Result<Vec<AuditEntry>>;
    fn add_enrollment_token(&self, token_sha256: &str, rec: &EnrollmentTokenRecord) -> Result<i64>;
    /// Whether an enrollment token can still be used (known, unexpired, not revoked, uses
    /// left); the use is spent by [`ClientStore::enroll_client`].
    fn enrollment_token_usable(&self, token_sha256: &str, now_ms: i64) -> Result<bool>;
    fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentTokenRecord>>;
    /// Sets a client's approval ("approved", "revoked"); the client by name or client id,
    /// inside the scope. The audit entry (its target and detail set to the client found) is
    /// written in the same transaction.
    fn set_client_approval(
        &self,
        key: &str,
        approval: &str,
        scope: &Scope,
        audit: &AuditEntry,
    ) -> Result<ClientIdentity>;
}

pub trait AuthStore: Send + Sync {
    fn add_token(&self, name: &str, token_sha256: &str, role: &str, now_ms: i64) -> Result<i64>;
    fn find_token(&self, token_sha256: &str) -> Result<Option<TokenInfo>>;
}

pub trait SiteStore: Send + Sync {
    fn site_get(&self, key: &str) -> Result<Option<String>>;
    fn site_set(&self, key: &str, value: &str) -> Result<()>;
}

/// A client as enrollment records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewClient {
    pub client_id: String,
    pub name: String,
    pub os: String,
    pub os_release: String,
    pub architecture: String,
    pub site: String,
    pub agent_version: String,
}

/// An authenticated client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    pub rowid: i64,
    pub client_id: String,
    pub name: String,
    /// "pending", "approved" or "revoked".
    pub approval: String,
}

pub trait ClientStore: Send + Sync {
    /// Registers a client — approved when the enrollment carried a token the site trusts,
    /// pending approval otherwise — or re-registers a known client id with a new
    /// credential, which only a trusted enrollment may do. An enrollment token's use is
    /// spent in the same transaction: no use is lost to an enrollment that fails.
    fn enroll_client(
        &self,
        c: &NewClient,
        credential_sha256: &str,
        approved: bool,
        spend_enrollment_token: Option<&str>,
        now_ms: i64,
    ) -> Result<ClientIdentity>;
    fn client_by_credential(&self, credential_sha256: &str) -> Result<Option<ClientIdentity>>;
    /// A client by its client id.
    fn client_by_id(&self, client_id: &str) -> Result<Option<ClientIdentity>>;
    fn touch_client(&self, rowid: i64, policy: bool, now_ms: i64) -> Result<()>;
    /// Stores a batch atomically and idempotently: once durable it is acknowledged, and a
    /// batch id already stored for this client stores nothing. Validates every message first.
    fn ingest_states(
        &self,
        client: &ClientIdentity,
        batch: &StateBatch,
        now_ms: i64,
    ) -> Result<BatchAck>;
    fn list_clients(&self, scope: &Scope) -> Result<Vec<ClientSummary>>;
    /// One page of the clients in the scope, by name, filtered as `q` asks, and how many
    /// match in all. Counts are computed for the page's clients only.
    fn list_clients_page(
        &self,
        q: &koshin_wire::ClientQuery,
        now_ms: i64,
        scope: &Scope,
    ) -> Result<(u64, Vec<ClientSummary>)>;
    /// By name or client id.
    /// One client by name or client id, if it is in the scope.
    fn get_client(&self, key: &str, scope: &Scope) -> Result<Option<ClientDetail>>;
    /// Updates changed after content version `since` (all unexpired ones for 0, or when
    /// `token` is not this site's token for `since`).
    fn client_catalog(&self, since: i64, token: &str) -> Result<ClientCatalog>;
}

/// A report's columns and rows.
pub type ReportRows = (Vec<String>, Vec<Vec<serde_json::Value>>);

/// Which rows of a report to keep: from `offset`, at most `limit`. With `count` the
/// statement runs to its end and the answer says how many rows it has; without, it stops
/// once the page is full (a console that knows the count from the counters asks so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportPage {
    pub offset: u64,
    pub limit: u64,
    pub count: bool,
}

pub trait ReportStore: Send + Sync {
    /// Runs a read-only query with named parameters (`:name`). A statement that would
    /// write is refused, and so is one whose parameter `params` lacks.
    fn run_report(
        &self,
        sql: &str,
        params: &[(String, String)],
        scope: &Scope,
    ) -> Result<ReportRows> {
        self.run_report_optional(sql, params, &[], scope)
    }
    /// As `run_report`, but a parameter named in `optional` that `params` lacks is bound
    /// to NULL instead of refused.
    fn run_report_optional(
        &self,
        sql: &str,
        params: &[(String, String)],
        optional: &[String],
        scope: &Scope,
    ) -> Result<ReportRows>;
    /// As `run_report_optional`, but only the rows from `offset` on, at most `limit` of
    /// them, are kept; with `page.count` the answer also says how many rows the whole
    /// result has (the statement then runs whole; only a page is held). Without, it stops
    /// once the page is full and says how many only if the rows ended first.
    fn run_report_page(
        &self,
        sql: &str,
        params: &[(String, String)],
        optional: &[String],
        scope: &Scope,
        page: ReportPage,
    ) -> Result<(ReportRows, Option<u64>)>;
    /// Prepares a report without running it: a statement that would write, or read what
    /// reports may not (administrator tokens, client credentials), is refused.
    fn check_report(&self, sql: &str) -> Result<()>;
}

/// A collection as listed: `members` counts the clients the asking administrator may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionRecord {
    pub id: String,
    pub name: String,
    pub comment: String,
    pub built_in: bool,
    pub members: i64,
    pub created_ms: i64,
    pub created_by: String,
    /// The rules' current version (1 when created).
    pub version: i64,
    pub rules: koshin_domain::collections::Rules,
    /// The site a replicated collection comes from (read-only here).
    pub origin: Option<String>,
    /// When its membership was last evaluated, and last evaluated in full.
    pub evaluated_ms: Option<i64>,
    pub full_evaluated_ms: Option<i64>,
}

/// One saved version of a collection's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionVersion {
    pub version: i64,
    pub rules: koshin_domain::collections::Rules,
    pub saved_ms: i64,
    pub saved_by: String,
    pub note: String,
    pub current: bool,
}

/// One member of a collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionMember {
    pub name: String,
    pub client_id: String,
    pub added_ms: i64,
    pub added_by: String,
    /// How it is a member: direct, query or include.
    pub via: String,
}

/// Collections and administrators' scopes. Every change writes its audit entry in the same
/// transaction. A `scope` limits what is seen (and which clients may be added) to the
/// clients of an administrator's collections.
pub trait CollectionStore: Send + Sync {
    /// A new collection, its id made of `site_code` and a number, with its rules as
    /// version 1 (collections in them named by id or name), evaluated at once.
    fn create_collection(
        &self,
        site_code: &str,
        name: &str,
        comment: &str,
        rules: &koshin_domain::collections::Rules,
        audit: &AuditEntry,
    ) -> Result<CollectionRecord>;
    /// Saves new rules as the next version and evaluates the collection (and every
    /// collection that reads it) in the same transaction.
    fn set_collection_rules(
        &self,
        key: &str,
        rules: &koshin_domain::collections::Rules,
        note: &str,
        audit: &AuditEntry,
    ) -> Result<CollectionRecord>;
    /// Saves version `version`'s rules again, as the next version, and evaluates.
    fn rollback_collection(
        &self,
        key: &str,
        version: i64,
        audit: &AuditEntry,
    ) -> Result<CollectionRecord>;
    /// Every saved version of a collection's rules, oldest first.
    fn collection_history(&self, key: &str, scope: &Scope) -> Result<Vec<CollectionVersion>>;
    /// Evaluates membership now: the clients marked since the last pass, then in full the
    /// collection `key` (and what reads it), or every collection when `full` and no key.
    fn evaluate_collections(
        &self,
        key: Option<&str>,
        full: bool,
        now_ms: i64,
    ) -> Result<crate::membership::Evaluated>;
    fn list_collections(&self, scope: &Scope) -> Result<Vec<CollectionRecord>>;
    /// One collection, by id or name, with its members.
    fn collection(
        &self,
        key: &str,
        scope: &Scope,
    ) -> Result<Option<(CollectionRecord, Vec<CollectionMember>)>> {
        Ok(self
            .collection_page(key, scope, Paging::ALL)?
            .map(|(c, m, _)| (c, m)))
    }
    /// One collection with one page of its members (of the scope), and how many there are.
    fn collection_page(
        &self,
        key: &str,
        scope: &Scope,
        page: Paging,
    ) -> Result<Option<(CollectionRecord, Vec<CollectionMember>, u64)>>;
    /// Adds and removes direct members (clients by name or client id); returns how many
    /// were added and removed. All or nothing.
    fn change_members(
        &self,
        key: &str,
        add: &[String],
        remove: &[String],
        scope: &Scope,
        audit: &AuditEntry,
    ) -> Result<(usize, usize)>;
    /// Deletes a collection no administrator is scoped to.
    fn delete_collection(&self, key: &str, audit: &AuditEntry) -> Result<CollectionRecord>;
    /// Collection ids for collections named by id or name; an unknown one is NotFound.
    fn resolve_collections(&self, keys: &[String]) -> Result<Vec<String>>;
    /// Sets an administrator's scopes (collection ids; empty for every client).
    fn set_admin_scopes(&self, name: &str, scopes: &[String], audit: &AuditEntry) -> Result<()>;
}

/// A content package: the files of some updates, distributed together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageRecord {
    pub id: String,
    pub name: String,
    pub priority: Priority,
    pub source_version: i64,
    pub created_ms: i64,
    pub created_by: String,
    pub updates: Vec<String>,
    pub files: i64,
    pub bytes: i64,
}

/// A package, its files and its distribution to each point.
pub type PackageView = (PackageRecord, Vec<PackageFile>, Vec<TargetRecord>);

/// One file of a package: where it is upstream (relative to the archive root), its name
/// and SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageFile {
    pub sha256: String,
    pub name: String,
    pub size: i64,
    pub filename: String,
}

/// A file in the content library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryFile {
    pub sha256: String,
    pub size: i64,
    pub name: String,
    /// The package's control stanza, for the distribution points' `Packages` indices.
    pub control: String,
}

/// A distribution point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpRecord {
    pub key: i64,
    pub name: String,
    pub url: String,
    pub local: bool,
    pub protected: bool,
    pub boundaries: Vec<String>,
    pub sender: SenderSettings,
    pub registered_ms: i64,
    pub registered_by: String,
    pub last_seen_ms: Option<i64>,
    pub last_error: Option<String>,
    pub groups: Vec<String>,
    /// Packages installed, waiting or distributing, failed.
    pub installed: i64,
    pub pending: i64,
    pub failed: i64,
}

/// A package's distribution to one distribution point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRecord {
    pub package_key: i64,
    pub package_id: String,
    pub package_name: String,
    pub priority: Priority,
    pub dp_key: i64,
    pub dp_name: String,
    /// waiting, distributing, installed or failed.
    pub state: String,
    pub source_version: i64,
    pub queued_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub bytes_total: i64,
    pub bytes_sent: i64,
    pub attempts: i64,
    pub retry_at_ms: Option<i64>,
    pub error: Option<String>,
    pub via_group: Option<String>,
}

/// How a distribution ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferEnd {
    Installed,
    /// Failed; tried again at this moment.
    Retry {
        error: String,
        at_ms: i64,
    },
    /// Failed for good (nothing to send, the package is gone).
    Failed {
        error: String,
    },
}

/// The content library, content packages, distribution points and groups, and the state of
/// every package on every distribution point. Administrators' changes take an audit entry.
pub trait ContentStore: Send + Sync {
    /// A package of the files of these updates (by id, id prefix or article id).
    fn create_package(
        &self,
        site_code: &str,
        name: &str,
        priority: Priority,
        updates: &[String],
        audit: &AuditEntry,
    ) -> Result<PackageRecord>;
    fn list_packages(&self) -> Result<Vec<PackageRecord>>;
    /// One package by id or name, its files and its distribution to each point.
    fn package(&self, key: &str) -> Result<Option<PackageView>>;
    fn set_package_priority(&self, key: &str, p: Priority, audit: &AuditEntry) -> Result<()>;
    /// Targets a package at distribution points and at the current members of groups (a
    /// group is evaluated now: a point added to it later does not get this package, P15).
    /// Returns how many targets were added or requeued.
    fn distribute(
        &self,
        key: &str,
        dps: &[String],
        groups: &[String],
        now_ms: i64,
        audit: &AuditEntry,
    ) -> Result<usize>;
    fn library_file(&self, sha256: &str) -> Result<Option<LibraryFile>>;
    fn add_library_file(&self, f: &LibraryFile, now_ms: i64) -> Result<()>;
    /// A package the site makes itself, holding exactly one file it built (already in the
    /// library folder), at `filename` on the distribution points. Made and distributed to
    /// every point the first time; after that a new file replaces the old one as the next
    /// source version and every point the package is on gets it again. The same file again
    /// changes nothing. In one transaction with the library record and the audit entry.
    fn put_site_package(
        &self,
        site_code: &str,
        name: &str,
        file: &LibraryFile,
        filename: &str,
        audit: &AuditEntry,
    ) -> Result<PackageRecord>;
    /// Registers a remote distribution point; the token is what the site presents to it.
    fn register_dp(
        &self,
        name: &str,
        url: &str,
        push_token: &str,
        audit: &AuditEntry,
    ) -> Result<DpRecord>;
    /// The site's own distribution point, made or its URL brought up to date.
    fn ensure_local_dp(&self, name: &str, url: &str, now_ms: i64) -> Result<()>;
    fn list_dps(&self) -> Result<Vec<DpRecord>>;
    fn dp(&self, key: &str) -> Result<Option<DpRecord>>;
    /// The token the site presents to a remote distribution point.
    fn dp_push_token(&self, dp_key: i64) -> Result<Option<String>>;
    /// Changes a distribution point's protection, boundaries or sender settings.
    fn set_dp(
        &self,
        key: &str,
        protected: Option<bool>,
        boundaries: Option<&[String]>,
        sender: Option<&SenderSettings>,
        audit: &AuditEntry,
    ) -> Result<DpRecord>;
    fn create_dp_group(&self, name: &str, audit: &AuditEntry) -> Result<()>;
    /// Adds and removes members; adding sends the group's packages nowhere (P15).
    fn change_dp_group(
        &self,
        name: &str,
        add: &[String],
        remove: &[String],
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Groups and their members' names.
    fn list_dp_groups(&self) -> Result<Vec<(String, Vec<String>)>>;
    /// Every distribution not yet installed or failed for good, oldest first.
    fn pending_targets(&self) -> Result<Vec<TargetRecord>>;
    fn start_target(
        &self,
        package_key: i64,
        dp_key: i64,
        bytes_total: i64,
        now_ms: i64,
    ) -> Result<()>;
    fn progress_target(&self, package_key: i64, dp_key: i64, bytes_sent: i64) -> Result<()>;
    fn finish_target(
        &self,
        package_key: i64,
        dp_key: i64,
        end: &TransferEnd,
        now_ms: i64,
    ) -> Result<()>;
    /// Every file of the packages installed on a distribution point (and of `also`, the
    /// package being added), with its library record: what its index lists.
    fn dp_files(&self, dp_key: i64, also: Option<i64>) -> Result<Vec<LibraryFile>>;
    fn package_files(&self, package_key: i64) -> Result<Vec<PackageFile>>;
    /// A distribution point found a file damaged: every installed package holding it goes
    /// back to waiting, to be sent again. Returns how many.
    fn damaged_file(&self, dp_key: i64, sha256: &str, now_ms: i64) -> Result<usize>;
    fn dp_seen(&self, dp_key: i64, now_ms: i64, error: Option<&str>) -> Result<()>;
    /// After a restart: distributions left running go back to waiting.
    fn requeue_interrupted(&self) -> Result<usize>;
}

/// Update groups, deployments, maintenance windows, and clients' deployment states. Changes
/// take an audit entry written in the same transaction.
pub trait DeploymentStore: Send + Sync {
    fn create_update_group(
        &self,
        name: &str,
        description: &str,
        updates: &[String],
        audit: &AuditEntry,
    ) -> Result<koshin_wire::UpdateGroupOut>;
    /// Every current security update of `product` that some client requires (P12).
    fn security_rollup_updates(&self, product: &str) -> Result<Vec<String>>;
    fn change_update_group(
        &self,
        name: &str,
        add: &[String],
        remove: &[String],
        audit: &AuditEntry,
    ) -> Result<koshin_wire::UpdateGroupOut>;
    fn list_update_groups(&self) -> Result<Vec<koshin_wire::UpdateGroupOut>>;
    /// A deployment of a group's updates (snapshotted) to a collection, with a content
    /// package of their files distributed to the given points (or every one).
    fn create_deployment(
        &self,
        site_code: &str,
        d: &koshin_wire::NewDeployment,
        available: &str,
        priority: Priority,
        audit: &AuditEntry,
    ) -> Result<koshin_wire::DeploymentOut>;
    fn list_deployments(&self, scope: &Scope) -> Result<Vec<koshin_wire::DeploymentOut>>;
    /// Imports update groups and deployment definitions from another site (P14), all or
    /// nothing, in one transaction: every update must be in this site's catalog and every
    /// collection must exist here (by name). A group or deployment that exists by its name
    /// with the same definition is left as it is (so an import runs twice safely); one that
    /// differs is a conflict. New deployments are created disabled unless `enable`.
    fn import_definitions(
        &self,
        site_code: &str,
        defs: &koshin_wire::DeploymentDefinitions,
        available_now: &str,
        enable: bool,
        audit: &AuditEntry,
    ) -> Result<koshin_wire::DefinitionsImported>;
    /// One deployment and every targeted client's state (inside the scope).
    fn deployment(
        &self,
        key: &str,
        scope: &Scope,
    ) -> Result<Option<koshin_wire::DeploymentDetail>> {
        Ok(self
            .deployment_page(key, scope, Paging::ALL)?
            .map(|(d, _)| d))
    }
    /// One deployment with one page of its targeted clients' states (inside the scope);
    /// its summary counts every targeted client by state; how many are targeted.
    fn deployment_page(
        &self,
        key: &str,
        scope: &Scope,
        page: Paging,
    ) -> Result<Option<(koshin_wire::DeploymentDetail, u64)>>;
    fn set_deployment_enabled(
        &self,
        key: &str,
        enabled: bool,
        reenable_ms: Option<i64>,
        audit: &AuditEntry,
    ) -> Result<koshin_wire::DeploymentOut>;
    fn remove_deployment_update(
        &self,
        key: &str,
        update: &str,
        audit: &AuditEntry,
    ) -> Result<koshin_wire::DeploymentOut>;
    /// Runs it again everywhere, even where it ran (P29).
    fn rerun_deployment(&self, key: &str, audit: &AuditEntry)
    -> Result<koshin_wire::DeploymentOut>;
    /// A deployment of the previous version of each update, where the content library
    /// holds its files; refused, naming what is missing, where it does not (P30).
    fn rollback_deployment(
        &self,
        site_code: &str,
        key: &str,
        name: &str,
        audit: &AuditEntry,
    ) -> Result<koshin_wire::DeploymentOut>;
    fn add_window(
        &self,
        collection: &str,
        name: &str,
        spec: &str,
        audit: &AuditEntry,
    ) -> Result<koshin_wire::WindowOut>;
    fn remove_window(&self, collection: &str, name: &str, audit: &AuditEntry) -> Result<()>;
    fn list_windows(&self) -> Result<Vec<koshin_wire::WindowOut>>;
    /// What a client gets: the enabled deployments of its collections.
    fn client_deployments(
        &self,
        client: i64,
        now_ms: i64,
    ) -> Result<Vec<koshin_wire::DeploymentPolicy>>;
    fn report_deployment_status(
        &self,
        client: i64,
        deployment_id: &str,
        generation: i64,
        state: &str,
        detail: &str,
        time_ms: i64,
    ) -> Result<()>;
}

/// A link to the parent site or to a child site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteLink {
    pub code: String,
    /// "parent" or "child".
    pub relation: String,
    /// "primary" or "secondary" (of a child).
    pub kind: String,
    pub url: String,
    pub joined_ms: i64,
    pub last_seen_ms: Option<i64>,
    pub last_error: Option<String>,
    pub notify_pending: bool,
    /// For the parent link: the parent's content version last replicated here.
    pub replicated_cv: i64,
    /// For the parent link: the last global-data change applied here.
    pub global_seq: i64,
    /// The last contact failed (and the link's status message said so).
    pub down: bool,
    /// For the parent link: items queued here for it.
    pub queued_up: i64,
}

/// One item queued for the parent: its kind (`states`, `deployment-status`, `status`), the
/// client (JSON, `null` for a status message) and the payload (JSON), as queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpwardRow {
    pub id: i64,
    pub kind: String,
    pub client_json: String,
    pub payload_json: String,
}

/// Client inventory (`inventory.rs`).
pub trait InventoryStore: Send + Sync {
    /// Stores a client's inventory: whole (`base` None), or the changes against the one the
    /// site holds (Conflict when `base` is not that one: the client sends it whole).
    fn store_inventory(
        &self,
        client: i64,
        r: &koshin_wire::InventoryReport,
        now_ms: i64,
    ) -> Result<koshin_wire::InventoryAck>;
    /// The clients in `scope` a collection query matches over their stored inventory and
    /// compliance: (computer, client id), by computer name.
    fn query_clients(
        &self,
        q: &koshin_domain::query::Query,
        scope: &koshin_domain::Scope,
    ) -> Result<Vec<(String, String)>>;
}

/// Global data down the hierarchy (`global.rs`), status messages up, and the state of links.
/// A custom inventory class property as the site holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryClassRecord {
    pub property: koshin_wire::InventoryClassProperty,
    pub changed_ms: i64,
    pub changed_by: String,
}

/// The site's custom inventory classes. A change writes its audit entry and carries the
/// classes into the stored machine policy (a new policy version), in one transaction.
pub trait InventoryClassStore: Send + Sync {
    /// Every class property, by class and property.
    fn inventory_classes(&self) -> Result<Vec<InventoryClassRecord>>;
    /// Adds a class property, or replaces its source. The caller has checked the names and
    /// the source.
    fn set_inventory_class(
        &self,
        p: &koshin_wire::InventoryClassProperty,
        audit: &AuditEntry,
    ) -> Result<InventoryClassRecord>;
    /// Deletes one property of a class, or the whole class; returns how many properties
    /// went (NotFound when none did).
    fn delete_inventory_class(
        &self,
        class: &str,
        property: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<usize>;
}

pub trait GlobalStore: Send + Sync {
    /// The collections and deployments changed after change `since` (all when 0).
    fn global_changes(&self, since: i64) -> Result<koshin_wire::GlobalData>;
    /// Applies a parent's answer, verified, in one transaction with the new sequence.
    fn apply_global(
        &self,
        parent: &str,
        data: &koshin_wire::GlobalData,
        now_ms: i64,
    ) -> Result<crate::global::GlobalApplied>;
    /// Stores status messages a child sent up, once each by origin; how many were new.
    fn store_forwarded_status(
        &self,
        messages: &[(String, koshin_domain::status::StatusMessage)],
    ) -> Result<u64>;
    /// Marks a link down or up; true when that changed its state.
    fn set_link_down(&self, code: &str, down: bool) -> Result<bool>;
}

/// An update as a parent replicates it to its children: its metadata and whether it expired.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaUpdate {
    pub update: koshin_domain::catalog::UpdateCandidate,
    pub expired: bool,
    /// The source's revision of the update (0: not given).
    #[serde(default)]
    pub revision: u32,
}

/// The site hierarchy: join tokens, the links to the parent and children.
pub trait HierarchyStore: Send + Sync {
    fn add_join_token(&self, token_sha256: &str, expires_ms: i64, audit: &AuditEntry)
    -> Result<()>;
    /// A child joins: the join token is spent and the link stored in one transaction.
    #[allow(clippy::too_many_arguments)]
    fn join_child(
        &self,
        token_sha256: &str,
        code: &str,
        kind: &str,
        url: &str,
        our_token: &str,
        their_token_sha256: &str,
        now_ms: i64,
    ) -> Result<()>;
    fn set_parent(
        &self,
        code: &str,
        url: &str,
        our_token: &str,
        their_token_sha256: &str,
        now_ms: i64,
    ) -> Result<()>;
    fn site_links(&self) -> Result<Vec<SiteLink>>;
    /// The link whose site presents this token, and the token to present back to it.
    fn link_by_token(&self, their_token_sha256: &str) -> Result<Option<SiteLink>>;
    fn link_token(&self, code: &str) -> Result<Option<String>>;
    fn set_link_url(&self, code: &str, url: &str) -> Result<()>;
    /// Records a contact with a linked site: reached (error None) or not.
    fn link_contact(&self, code: &str, now_ms: i64, error: Option<&str>) -> Result<()>;
    fn set_notify_pending(&self, code: &str, pending: bool) -> Result<()>;
    fn set_replicated_cv(&self, code: &str, cv: i64) -> Result<()>;
    /// The whole catalog as a parent replicates it: (update source id, content version,
    /// its token, the updates).
    fn replica_catalog(&self) -> Result<(String, i64, String, Vec<ReplicaUpdate>)>;
    /// Up to `limit` queued client batches for the parent, oldest first: (queue id, client,
    /// batch), JSON as queued.
    fn upward_batches(&self, limit: u32) -> Result<Vec<UpwardRow>>;
    /// The parent acknowledged these.
    fn upward_done(&self, ids: &[i64]) -> Result<()>;
    /// A client of a child site, as the child reports it: recorded (or updated) here as
    /// that site's client, approved, with no credential of this site.
    fn remote_client(&self, c: &NewClient, now_ms: i64) -> Result<ClientIdentity>;
    /// Registers (or registers again) a replica update point of this site.
    fn register_update_point(
        &self,
        name: &str,
        url: &str,
        push_token: &str,
        pull_token_sha256: &str,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// The replica update points, in the order they were installed.
    fn update_points(&self) -> Result<Vec<UpdatePointRecord>>;
    /// The replica whose pull token this is.
    fn update_point_by_pull(&self, pull_token_sha256: &str) -> Result<Option<String>>;
    fn update_point_push_token(&self, name: &str) -> Result<Option<String>>;
    fn update_point_synced(
        &self,
        name: &str,
        now_ms: i64,
        content_version: Option<i64>,
        error: Option<&str>,
    ) -> Result<()>;
}

/// A replica update point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdatePointRecord {
    pub name: String,
    pub url: String,
    pub registered_ms: i64,
    pub last_sync_ms: Option<i64>,
    pub content_version: i64,
    pub last_error: Option<String>,
}

/// The site-wide counts of computer/update pairs by state at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ComplianceSampleRecord {
    pub time_ms: i64,
    pub clients: i64,
    pub required: i64,
    pub installed: i64,
    pub not_required: i64,
    pub unknown: i64,
    /// Updates that at least one client requires.
    pub updates_required: i64,
}

/// The compliance trend (`trend.rs`).
pub trait TrendStore: Send + Sync {
    /// The counts now, not stored.
    fn current_compliance(&self, now_ms: i64) -> Result<ComplianceSampleRecord>;
    /// Stores the counts now as a sample (and drops samples older than the kept days).
    fn sample_compliance(&self, now_ms: i64) -> Result<ComplianceSampleRecord>;
    fn last_compliance_sample_ms(&self) -> Result<Option<i64>>;
    /// The samples from `since_ms` to `until_ms`, at most `max_points` of them (the last of
    /// each equal span when there are more), oldest first.
    fn compliance_samples(
        &self,
        since_ms: i64,
        until_ms: i64,
        max_points: u32,
    ) -> Result<Vec<ComplianceSampleRecord>>;
}

/// Everything a site keeps.
pub trait Store:
    CatalogStore
    + StatusStore
    + SyncStore
    + PolicyStore
    + AuthStore
    + SiteStore
    + ClientStore
    + ReportStore
    + TrustStore
    + CollectionStore
    + ContentStore
    + DeploymentStore
    + HierarchyStore
    + GlobalStore
    + crate::export::ExportStore
    + InventoryStore
    + InventoryClassStore
    + TrendStore
{
}
impl<T> Store for T where
    T: CatalogStore
        + StatusStore
        + SyncStore
        + PolicyStore
        + AuthStore
        + SiteStore
        + ClientStore
        + ReportStore
        + TrustStore
        + CollectionStore
        + ContentStore
        + DeploymentStore
        + HierarchyStore
        + GlobalStore
        + crate::export::ExportStore
        + InventoryStore
        + InventoryClassStore
        + TrendStore
{
}
