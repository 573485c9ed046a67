//! Wire types: the JSON bodies of the HTTP API under `/api/v1`, shared by the site server,
//! the CLI and (later) the agent and the console. This is the one place that decides field
//! names; cli.md promises them (snake_case), so change them only with a changelog entry.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// An error answer: `{"error": "..."}` with a one-line reason.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// One update of the catalog, as `koshin updates list --json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateSummary {
    pub id: String,
    pub revision: u32,
    pub title: String,
    pub product: String,
    pub classification: String,
    pub article_id: String,
    pub bulletin_id: Option<String>,
    pub severity: Option<String>,
    pub released: Timestamp,
    pub revised: Timestamp,
    pub superseded_by: Option<String>,
    pub expired: bool,
    pub source: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateBinary {
    pub name: String,
    pub architecture: String,
    pub version: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

/// A computer that requires an update (filled once clients report, with the agent issue).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComputerRef {
    pub name: String,
    pub id: String,
}

/// One update in full, as `koshin updates show ID` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateDetail {
    #[serde(flatten)]
    pub summary: UpdateSummary,
    pub vendor: String,
    pub description: String,
    pub first_synced: Timestamp,
    pub content_version: i64,
    pub packages: Vec<UpdateBinary>,
    pub supersedes: Vec<String>,
    pub required_by: Vec<ComputerRef>,
    /// Local publisher updates: detection rules, content files, install command.
    pub local: Option<serde_json::Value>,
    /// The content version of the site's newest offline scan catalog, when that catalog
    /// carries this update: clients scanned offline (or by the scan tool) see it (I5,
    /// "deployable to legacy clients").
    #[serde(default)]
    pub in_offline_catalog: Option<i64>,
}

/// `GET /api/v1/updates` query.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UpdateQuery {
    pub classification: Option<String>,
    pub product: Option<String>,
    /// Only superseded updates.
    #[serde(default)]
    pub superseded: bool,
    /// Only expired updates.
    #[serde(default)]
    pub expired: bool,
    /// Substring of title, source or article id.
    pub search: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// A status message as the API and `koshin status-messages --json` give it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusMessageOut {
    pub record_id: i64,
    pub message_id: u32,
    pub severity: String,
    pub level: String,
    pub source: String,
    pub component: String,
    pub system: String,
    pub site: String,
    pub process_id: u32,
    pub thread_id: u64,
    pub time: Timestamp,
    pub insertion_strings: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub description: String,
}

/// `GET /api/v1/status-messages` query.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StatusQuery {
    pub component: Option<String>,
    pub id: Option<u32>,
    pub severity: Option<String>,
    pub system: Option<String>,
    /// Only messages at or after this time.
    pub since: Option<Timestamp>,
    /// Only messages with a record id above this (for following).
    pub after: Option<i64>,
    /// Only messages with a record id below this (for paging back, newest first).
    #[serde(default)]
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

/// One component on one system of one site, as the component status summary
/// (`GET /api/v1/status-messages/summary`, `koshin status-messages --summary --json`)
/// gives it: what it reported in the window, and how healthy that makes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub component: String,
    pub system: String,
    pub site: String,
    /// "OK", "Warning" or "Critical", under Configuration Manager's default thresholds.
    pub status: String,
    /// Error messages in the window.
    pub errors: u64,
    /// Warning messages in the window.
    pub warnings: u64,
    /// Informational messages in the window.
    pub informational: u64,
    /// The message ID of the component's last message in the window.
    pub last_message_id: u32,
    /// When the last message was reported (UTC).
    pub last_time: Timestamp,
    /// The last message's text, as the status message viewer shows it.
    pub last_description: String,
}

/// `GET /api/v1/status-messages/summary` query.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StatusSummaryQuery {
    /// Only this component.
    pub component: Option<String>,
    /// Only this system.
    pub system: Option<String>,
    /// Count messages at or after this time (default: 00:00 UTC today, on the site's clock).
    pub since: Option<Timestamp>,
}

/// `POST /api/v1/sync`: ask for a sync now (SyncNow).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SyncRequest {
    #[serde(default)]
    pub full: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncRequestAccepted {
    /// "full" or "delta".
    pub kind: String,
    /// The last sync run before this request: a waiting client watches for a newer one.
    pub after_run: Option<i64>,
}

/// One sync run of the sync manager.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncRun {
    pub id: i64,
    pub kind: String,
    pub trigger: String,
    /// "running", "succeeded" or "failed".
    pub state: String,
    pub started: Timestamp,
    pub finished: Option<Timestamp>,
    pub error: Option<String>,
    pub items: Option<u64>,
    pub content_version: Option<i64>,
    pub phase: Option<String>,
    pub progress_done: u64,
    pub progress_total: u64,
}

/// `GET /api/v1/sync`: where synchronization stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncStatus {
    pub site: String,
    pub update_source_id: String,
    pub content_version: i64,
    pub pending_request: Option<String>,
    pub next_scheduled: Option<Timestamp>,
    pub next_retry: Option<Timestamp>,
    pub runs: Vec<SyncRun>,
}

/// An update point (the seeds' SUP) clients can scan against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdatePoint {
    pub url: String,
    /// "active", "replica" or "internet".
    pub role: String,
}

/// The site-wide machine policy created after each successful sync (S11).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachinePolicy {
    pub policy_version: i64,
    pub site: String,
    pub update_points: Vec<UpdatePoint>,
    pub content_version: i64,
    /// The scan schedule, in minutes (default 7 days).
    pub scan_interval_minutes: u64,
    /// How long client metadata stays valid, in minutes (default 24 hours, C6).
    pub metadata_ttl_minutes: u64,
    /// Clients schedule their first scan at a random time within this many minutes (C2).
    pub first_scan_window_minutes: u64,
    /// How often clients poll machine policy.
    pub policy_poll_minutes: u64,
    pub created: Timestamp,
    /// The distribution points a client may use (added when the policy is served).
    #[serde(default)]
    pub distribution_points: Vec<DpPolicy>,
    /// The site's archive key (armored OpenPGP public key) that signs every distribution
    /// point's indices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_key: Option<String>,
    /// The site's custom inventory classes: every client collects each property as the
    /// inventory property `custom.CLASS.PROPERTY`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory_classes: Vec<InventoryClassProperty>,
    /// Set only in the policy of the client that is the offline scan catalog's sync host
    /// (I1): it fetches the catalog every this many days (`/api/v1/mp/offline-catalog`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_catalog_refresh_days: Option<u32>,
}

/// One property of a custom inventory class, and where a client reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryClassProperty {
    pub class: String,
    pub property: String,
    pub source: InventorySource,
}

/// Where a custom inventory property is read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum InventorySource {
    /// A file under the client's root; `format` is `key-value`, `ini`, `json` or
    /// `os-release`, and `key` what to look up in it.
    File {
        path: String,
        #[serde(default = "key_value")]
        format: String,
        key: String,
    },
    /// A program and its arguments, run without a shell: each non-empty line of its
    /// standard output is one value.
    Command { argv: Vec<String> },
    /// A kernel parameter, as `sysctl` names it (`net.ipv4.ip_forward`).
    Sysctl { key: String },
    /// A kind of source this program does not know (a newer site's): it gives no value.
    #[serde(other)]
    Unknown,
}

fn key_value() -> String {
    "key-value".into()
}

impl std::fmt::Display for InventorySource {
    /// One line for people: `file /etc/app.conf (key-value) TIER`, `command echo hello`,
    /// `sysctl net.ipv4.ip_forward`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InventorySource::File { path, format, key } => {
                write!(f, "file {path} ({format}) {key}")
            }
            InventorySource::Command { argv } => {
                f.write_str("command")?;
                for a in argv {
                    if !a.is_empty()
                        && a.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
                    {
                        write!(f, " {a}")?;
                    } else {
                        write!(f, " '{}'", a.replace('\'', "'\\''"))?;
                    }
                }
                Ok(())
            }
            InventorySource::Sysctl { key } => write!(f, "sysctl {key}"),
            InventorySource::Unknown => f.write_str("unknown"),
        }
    }
}

/// `GET /api/v1/inventory/classes`: a class property as the site holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryClassOut {
    pub class: String,
    pub property: String,
    /// The inventory property clients collect it as: `custom.CLASS.PROPERTY`.
    pub path: String,
    pub source: InventorySource,
    pub changed: Timestamp,
    pub changed_by: String,
}

/// `POST /api/v1/inventory/classes/{name}/delete`: one property of the class, or (without
/// `property`) the whole class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryClassDelete {
    #[serde(default)]
    pub property: Option<String>,
}

/// What a delete removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryClassesDeleted {
    pub deleted: u64,
}

/// A distribution point as policy gives it to clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpPolicy {
    pub name: String,
    /// The repository root: `deb [signed-by=...] URL koshin main`.
    pub url: String,
    pub boundaries: Vec<String>,
    pub protected: bool,
}

/// Counts of the catalog, per product and classification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogCount {
    pub product: String,
    pub classification: String,
    pub updates: u64,
    pub superseded: u64,
    pub expired: u64,
}

/// `GET /api/v1/site`: who this site is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiteInfo {
    pub site: String,
    pub version: String,
    pub content_version: i64,
    pub catalog: Vec<CatalogCount>,
}

// ---------------------------------------------------------------------------------------
// Clients and the management point (enrollment, policy, catalog, state messages).

/// `POST /api/v1/clients/enroll`: a machine registers with a site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// A stable id the agent generated once (UUID).
    pub client_id: String,
    pub name: String,
    pub os: String,
    pub os_release: String,
    pub architecture: String,
    pub agent_version: String,
    /// A PKCS#10 certificate signing request (PEM) for the client's own key: the site
    /// answers with a client certificate for mutual TLS. The key never leaves the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub client_id: String,
    /// The client's own credential (Bearer) for every later request.
    pub credential: String,
    pub site: String,
    /// "approved", or "pending" until an administrator approves the client.
    #[serde(default = "approved")]
    pub approval: String,
    /// The site CA certificate (PEM): the agent trusts it, and only it, for an `https://`
    /// site. Absent from sites older than TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
    /// The client certificate (PEM) the site CA signed for the request's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
}

fn approved() -> String {
    "approved".into()
}

impl std::fmt::Debug for EnrollResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollResponse")
            .field("client_id", &self.client_id)
            .field("credential", &"<redacted>")
            .field("site", &self.site)
            .field("approval", &self.approval)
            .field("ca_certificate", &self.ca_certificate.is_some())
            .field("client_certificate", &self.client_certificate.is_some())
            .finish()
    }
}

/// One binary of an update in the client catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogBinary {
    pub name: String,
    pub architecture: String,
    pub version: String,
}

/// One update as clients scan it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub id: String,
    pub revision: u32,
    pub title: String,
    pub product: String,
    pub classification: String,
    pub superseded_by: Option<String>,
    pub expired: bool,
    pub binaries: Vec<CatalogBinary>,
    /// Local publisher updates: detection rules and content.
    pub local: Option<serde_json::Value>,
}

/// `GET /api/v1/mp/catalog?since=V`: the updates changed after content version V (all
/// unexpired updates when V is 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientCatalog {
    pub content_version: i64,
    /// Identifies the catalog at `content_version`: a site restored from a backup that
    /// reaches the same version with other contents has another token.
    pub token: String,
    /// The version this answer starts from: 0 (the whole catalog) when the client's
    /// version and token do not name this site's catalog.
    pub since: i64,
    pub updates: Vec<CatalogEntry>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CatalogQuery {
    #[serde(default)]
    pub since: i64,
    /// The token the client got with version `since`.
    #[serde(default)]
    pub token: String,
}

/// One state message (C4): the state of one update on the sending client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateMessage {
    pub update_id: String,
    pub revision: u32,
    /// "required", "installed" or "not_required".
    pub state: String,
    /// Installed but waiting for a restart (C1, C8): the update stays Required.
    #[serde(default)]
    pub restart_pending: bool,
    pub time: Timestamp,
    pub scan_id: String,
}

/// A scan as the agent records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanRecord {
    pub scan_id: String,
    /// What started it (C5): schedule, scan-cycle, deployment-evaluation-cycle, ...
    pub trigger: String,
    /// "non-forced online", "forced online" or "forced offline".
    pub kind: String,
    /// Whether it fetched metadata from the update point.
    pub online: bool,
    pub started: Timestamp,
    pub duration_ms: u64,
    /// "succeeded", or "failed: <reason>".
    pub result: String,
    pub content_version: i64,
    /// The token of that catalog version (`ClientCatalog::token`): the site counts the scan
    /// as covering its catalog only when the token is its own for that version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_token: Option<String>,
    pub required: u64,
    pub installed: u64,
    pub not_required: u64,
}

/// `POST /api/v1/mp/state-messages`: a batch of state messages and scan records. A batch is
/// stored once however often it is sent (its `batch_id` decides).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateBatch {
    pub batch_id: String,
    pub client_id: String,
    pub messages: Vec<StateMessage>,
    #[serde(default)]
    pub scans: Vec<ScanRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchAck {
    pub batch_id: String,
    /// Messages stored by this call (0 for a batch already stored).
    pub stored: u64,
    pub duplicate: bool,
    /// Messages about updates this site's catalog does not have (a site restored from an
    /// older backup): not stored, named here so the client can stop reporting them.
    #[serde(default)]
    pub unknown_updates: Vec<String>,
}

/// A client as `koshin clients list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientSummary {
    pub name: String,
    pub client_id: String,
    /// "approved", "pending" or "revoked".
    #[serde(default = "approved")]
    pub approval: String,
    pub os: String,
    pub os_release: String,
    pub architecture: String,
    pub site: String,
    pub enrolled: Timestamp,
    pub last_contact: Option<Timestamp>,
    pub last_policy: Option<Timestamp>,
    pub last_scan: Option<Timestamp>,
    pub required: u64,
    pub installed: u64,
    pub not_required: u64,
    pub unknown: u64,
}

/// `GET /api/v1/clients` query: with any of these, one page of the clients by name, the
/// number that match in the `X-Total-Count` header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientQuery {
    /// A part of the name or client id.
    #[serde(default)]
    pub search: Option<String>,
    /// Only clients that have not contacted the site for this many days (or never).
    #[serde(default)]
    pub not_reporting_days: Option<u32>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u32>,
}

impl ClientQuery {
    /// Whether the query asks for anything but the whole list.
    pub fn is_paged(&self) -> bool {
        self.search.is_some()
            || self.not_reporting_days.is_some()
            || self.limit.is_some()
            || self.offset.is_some()
    }
}

/// One update's state on one client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientUpdateState {
    pub update_id: String,
    pub title: String,
    pub classification: String,
    pub state: String,
    pub restart_pending: bool,
    pub time: Timestamp,
}

/// `koshin clients show NAME`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientDetail {
    #[serde(flatten)]
    pub summary: ClientSummary,
    pub last_scan_record: Option<ScanRecord>,
    /// Required and installed updates (not-required ones are only counted).
    pub updates: Vec<ClientUpdateState>,
}

// ---------------------------------------------------------------------------------------
// Reports.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportInfo {
    pub name: String,
    pub title: String,
    pub category: String,
    /// The parameters a run must give.
    pub parameters: Vec<String>,
    /// The parameters a run may leave out; a left-out one is NULL in the statement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub optional_parameters: Vec<String>,
    /// The report's file, header comments included: copy it to `DATA/reports/NAME.sql`.
    pub sql: String,
    #[serde(default)]
    pub description: String,
    /// "built-in", or the path of the site's own report file.
    #[serde(default)]
    pub source: String,
    /// The capability whose data completes it; until then it runs and returns no rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_by: Option<String>,
    /// Why it cannot run (a bad file, a statement that writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A report's rows: each row an object keyed by column name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportResult {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// When the site ran it: the data is current as of this moment.
    pub generated: Timestamp,
    pub duration_ms: u64,
    /// With `refresh_minutes` (1–60, P9): when a console showing it should ask again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_refresh: Option<Timestamp>,
    /// With `limit` (a page of the rows): how many rows the whole result has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// The site-wide counts of computer/update pairs by state at one moment (the sums of
/// `updates-with-counts` over unexpired updates).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComplianceSample {
    pub time: Timestamp,
    pub clients: i64,
    pub required: i64,
    pub installed: i64,
    pub not_required: i64,
    pub unknown: i64,
    /// Updates that at least one computer requires.
    pub updates_required: i64,
}

/// `GET /api/v1/compliance/trend?days=N`: the samples of the last N days (at most
/// `max_points`, the last of each equal span when there are more), oldest first, and the
/// counts now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComplianceTrend {
    pub days: u32,
    /// How often the site takes a sample.
    pub interval_minutes: u32,
    pub points: Vec<ComplianceSample>,
    pub current: ComplianceSample,
}

/// `GET /api/v1/compliance/trend` query.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrendQuery {
    /// How far back (default 30, at most 400).
    #[serde(default)]
    pub days: Option<u32>,
    /// At most this many samples (default 500, at most 5000).
    #[serde(default)]
    pub max_points: Option<u32>,
}

// ---------------------------------------------------------------------------------------
// The agent's own output (`koshin-agent scan --json`, `koshin-agent status --json`).

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanPackage {
    pub name: String,
    pub arch: String,
    pub installed: Option<String>,
    pub target: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanUpdate {
    pub id: String,
    pub title: String,
    pub classification: String,
    pub state: String,
    pub restart_pending: bool,
    pub packages: Vec<ScanPackage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanOutput {
    pub kind: String,
    pub trigger: String,
    pub online: bool,
    pub duration_ms: u64,
    pub content_version: i64,
    /// State messages this scan queued (updates whose state changed).
    pub state_messages: u64,
    pub required: u64,
    pub installed: u64,
    pub not_required: u64,
    pub updates: Vec<ScanUpdate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub client_id: String,
    pub name: String,
    pub site: String,
    pub site_code: String,
    pub root: String,
    pub policy_version: Option<i64>,
    pub last_scan: Option<ScanRecord>,
    pub metadata_fetched: Option<Timestamp>,
    pub ttl_expires: Option<Timestamp>,
    pub content_version: i64,
    pub queue_length: u64,
    pub next_policy_poll: Option<Timestamp>,
    pub next_scan: Option<Timestamp>,
    pub next_send: Option<Timestamp>,
    pub send_interval_minutes: u64,
    /// The distribution point this client uses, by its boundaries (P22).
    #[serde(default)]
    pub distribution_point: Option<DpChoice>,
}

/// The distribution point a client chose, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpChoice {
    pub name: String,
    pub url: String,
    pub reason: String,
}

// ---------------------------------------------------------------------------------------
// Trust: administrators, tokens, the audit log, enrollment tokens.

/// `POST /api/v1/login`.
#[derive(Clone, Deserialize, Serialize)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
    /// How long the token stays valid, in hours (default 12, at most 720).
    #[serde(default)]
    pub hours: Option<u32>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("hours", &self.hours)
            .finish()
    }
}

/// A token: shown once, stored by the site only as a hash.
#[derive(Clone, Deserialize, Serialize)]
pub struct TokenResponse {
    pub token: String,
    pub name: String,
    pub role: String,
    pub expires: Option<Timestamp>,
    /// What the role grants ("read", "sync", "deploy updates", …): a console offers only
    /// these actions (the site checks every request regardless).
    #[serde(default)]
    pub permissions: Vec<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token", &"<redacted>")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("expires", &self.expires)
            .finish()
    }
}

/// `POST /api/v1/admins`.
#[derive(Clone, Deserialize, Serialize)]
pub struct NewAdmin {
    pub name: String,
    pub role: String,
    pub password: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for NewAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAdmin")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("password", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminOut {
    pub name: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub created: Timestamp,
    pub created_by: String,
    pub disabled: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditOut {
    pub time: Timestamp,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub source: String,
}

/// `GET /api/v1/audit`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `POST /api/v1/enrollment-tokens`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewEnrollmentToken {
    #[serde(default)]
    pub description: String,
    /// How many enrollments it allows; none: any number until it expires.
    #[serde(default)]
    pub uses: Option<u32>,
    /// Hours until it expires; none: 24.
    #[serde(default)]
    pub hours: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnrollmentTokenOut {
    pub id: i64,
    pub description: String,
    pub created_by: String,
    pub created: Timestamp,
    pub expires: Option<Timestamp>,
    pub uses_left: Option<i64>,
    pub used: i64,
    pub revoked: Option<Timestamp>,
    /// Only in the answer that creates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A collection as `koshin collections list` shows it; `members` counts the clients the
/// asking administrator may see.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionOut {
    pub id: String,
    pub name: String,
    pub comment: String,
    pub built_in: bool,
    pub members: i64,
    pub created: Timestamp,
    pub created_by: String,
    /// The current version of its rules.
    #[serde(default)]
    pub version: i64,
    #[serde(default)]
    pub rules: CollectionRules,
    /// The site a replicated collection comes from (change it there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// When its membership was last evaluated, and last evaluated in full.
    #[serde(default)]
    pub evaluated: Option<Timestamp>,
    #[serde(default)]
    pub full_evaluated: Option<Timestamp>,
}

/// A collection's rules (docs/inventory.md): collections by id (by id or name when sent).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionRules {
    /// A query; clients it matches are members.
    #[serde(default)]
    pub query: Option<String>,
    /// Members are drawn from this collection; none is All Systems.
    #[serde(default)]
    pub limiting: Option<String>,
    #[serde(default)]
    pub includes: Vec<String>,
    #[serde(default)]
    pub excludes: Vec<String>,
}

/// One member of a collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionMemberOut {
    pub name: String,
    pub client_id: String,
    pub added: Timestamp,
    pub added_by: String,
    /// How it is a member: `direct`, `query`, `include` (`all` in All Systems).
    #[serde(default)]
    pub via: String,
}

/// `POST /api/v1/collections/{key}/rules`: what to change; what is left out stays.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RulesChange {
    #[serde(default)]
    pub query: Option<String>,
    /// Drop the query.
    #[serde(default)]
    pub no_query: bool,
    /// A collection by id or name; All Systems for none.
    #[serde(default)]
    pub limiting: Option<String>,
    /// Replace the included (excluded) collections; an empty list drops them all.
    #[serde(default)]
    pub includes: Option<Vec<String>>,
    #[serde(default)]
    pub excludes: Option<Vec<String>>,
    /// Why, kept with the version.
    #[serde(default)]
    pub note: String,
}

/// One saved version of a collection's rules (`koshin collections history`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionVersionOut {
    pub version: i64,
    #[serde(flatten)]
    pub rules: CollectionRules,
    pub saved: Timestamp,
    pub saved_by: String,
    pub note: String,
    pub current: bool,
}

/// `POST /api/v1/collections/{key}/rollback`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionRollback {
    pub version: i64,
}

/// What an evaluation of collection membership changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvaluationOut {
    pub collections: u64,
    pub clients: u64,
    pub joined: u64,
    pub left: u64,
}

/// `koshin collections show NAME`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionDetail {
    #[serde(flatten)]
    pub collection: CollectionOut,
    pub member_list: Vec<CollectionMemberOut>,
}

/// `POST /api/v1/collections`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewCollection {
    pub name: String,
    #[serde(default)]
    pub comment: String,
    #[serde(default, flatten)]
    pub rules: CollectionRules,
}

/// `POST /api/v1/collections/{key}/members`: clients by name or client id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MembersChange {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// What a members change did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MembersChanged {
    pub added: u64,
    pub removed: u64,
    pub members: i64,
}

/// `POST /api/v1/admins/{name}/scopes`: collections by id or name; empty for every client.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScopesChange {
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A content package as `koshin content list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackageOut {
    pub id: String,
    pub name: String,
    pub priority: String,
    pub source_version: i64,
    pub updates: Vec<String>,
    pub files: i64,
    pub bytes: i64,
    pub created: Timestamp,
    pub created_by: String,
    /// Distribution points that hold it, of those it is targeted at.
    pub installed: i64,
    pub targeted: i64,
}

/// One file of a package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackageFileOut {
    pub name: String,
    pub sha256: String,
    pub size: i64,
    pub in_library: bool,
}

/// A package's distribution to one distribution point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetOut {
    pub package: String,
    pub distribution_point: String,
    /// waiting, distributing, installed or failed.
    pub state: String,
    pub priority: String,
    pub source_version: i64,
    pub queued: Timestamp,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    pub bytes_total: i64,
    pub bytes_sent: i64,
    pub attempts: i64,
    pub retry_at: Option<Timestamp>,
    pub error: Option<String>,
    pub via_group: Option<String>,
}

/// `koshin content show NAME`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackageDetail {
    #[serde(flatten)]
    pub package: PackageOut,
    pub file_list: Vec<PackageFileOut>,
    pub targets: Vec<TargetOut>,
}

/// `POST /api/v1/content`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewPackage {
    pub name: String,
    /// high, medium (the default) or low.
    #[serde(default)]
    pub priority: Option<String>,
    /// Updates by id, id prefix or article id.
    pub updates: Vec<String>,
}

/// `POST /api/v1/content/{key}/distribute`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DistributeRequest {
    #[serde(default)]
    pub distribution_points: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `POST /api/v1/content/{key}/priority`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PriorityChange {
    pub priority: String,
}

/// A distribution point as `koshin dp list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpOut {
    pub name: String,
    pub url: String,
    pub local: bool,
    pub protected: bool,
    pub boundaries: Vec<String>,
    pub groups: Vec<String>,
    /// `HH-HH=availability` rules; hours no rule covers are open.
    pub schedule: Vec<String>,
    /// Bytes per second, none for unlimited.
    pub rate_limit: Option<u64>,
    pub lifted_until: Option<Timestamp>,
    pub registered: Timestamp,
    pub registered_by: String,
    pub last_seen: Option<Timestamp>,
    pub last_error: Option<String>,
    pub installed: i64,
    pub pending: i64,
    pub failed: i64,
    /// OK, Pending, Error.
    pub status: String,
}

/// `POST /api/v1/dps/register` — from `koshin dp serve`, with an administrator's token.
#[derive(Clone, Deserialize, Serialize)]
pub struct DpRegister {
    pub name: String,
    pub url: String,
    /// What the site presents to the point when it pushes content.
    pub push_token: String,
}

impl std::fmt::Debug for DpRegister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpRegister")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("push_token", &"<redacted>")
            .finish()
    }
}

/// `POST /api/v1/dps/{name}/settings`: what is given changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DpSettings {
    #[serde(default)]
    pub protected: Option<bool>,
    #[serde(default)]
    pub boundaries: Option<Vec<String>>,
    #[serde(default)]
    pub schedule: Option<Vec<String>>,
    /// Bytes per second; 0 for unlimited.
    #[serde(default)]
    pub rate_limit: Option<u64>,
    /// Lift the schedule and rate limit for this many minutes (an emergency); 0 ends a lift.
    #[serde(default)]
    pub lift_minutes: Option<u64>,
}

/// A distribution point group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpGroupOut {
    pub name: String,
    pub members: Vec<String>,
}

/// `POST /api/v1/dp-groups` and `.../members`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DpGroupChange {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// What a validation of a distribution point found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationOut {
    pub distribution_point: String,
    pub checked: usize,
    pub damaged: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Deployments.

/// An update group (the seeds' update list).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateGroupOut {
    pub name: String,
    pub description: String,
    pub updates: Vec<UpdateRef>,
}

/// An update by id and title.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRef {
    pub id: String,
    pub title: String,
}

/// `POST /api/v1/update-groups`: updates by id, unique id prefix, article id or title; or,
/// with `security_rollup_for`, every security update some client requires for that product.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewUpdateGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub updates: Vec<String>,
    #[serde(default)]
    pub security_rollup_for: Option<String>,
}

/// `POST /api/v1/deployments`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewDeployment {
    pub name: String,
    /// The update group it installs; empty for a program deployment.
    #[serde(default)]
    pub update_group: String,
    pub collection: String,
    /// `2026-11-21T18:00`; now when not given.
    #[serde(default)]
    pub available: Option<String>,
    #[serde(default)]
    pub deadline: Option<String>,
    /// Times in UTC (the same moment everywhere) rather than each client's local time.
    #[serde(default)]
    pub utc: bool,
    /// Users may postpone until the deadline (default true).
    #[serde(default)]
    pub allow_postpone: Option<bool>,
    #[serde(default)]
    pub notification: String,
    #[serde(default)]
    pub suppress_restart_servers: bool,
    #[serde(default)]
    pub suppress_restart_workstations: bool,
    /// Download before installing (default), or install from the distribution point.
    #[serde(default)]
    pub install_from_dp: bool,
    /// Evaluate again every N days (a recurring deployment, P20).
    #[serde(default)]
    pub recurrence_days: Option<u32>,
    /// Clients send their inventory right after the scan that evaluates it (I4).
    #[serde(default)]
    pub expedited_inventory: bool,
    /// A program instead of updates: [`PROGRAM_OFFLINE_SCAN`] or
    /// [`PROGRAM_OFFLINE_SCAN_EXPEDITED`] (the scan tool, with the site's offline scan
    /// catalog package as its content).
    #[serde(default)]
    pub program: Option<String>,
    /// The priority of its content (default medium).
    #[serde(default)]
    pub priority: Option<String>,
    /// Distribution points for its content; none: every one.
    #[serde(default)]
    pub distribution_points: Vec<String>,
}

/// A deployment as listed and shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentOut {
    pub id: String,
    pub name: String,
    pub update_group: String,
    pub collection: String,
    pub package: Option<String>,
    pub available: String,
    pub deadline: Option<String>,
    pub utc: bool,
    pub allow_postpone: bool,
    pub notification: String,
    pub suppress_restart_servers: bool,
    pub suppress_restart_workstations: bool,
    pub install_from_dp: bool,
    pub recurrence_days: Option<u32>,
    #[serde(default)]
    pub expedited_inventory: bool,
    /// The program it runs, for a program deployment.
    #[serde(default)]
    pub program: Option<String>,
    pub enabled: bool,
    pub reenable_at: Option<Timestamp>,
    pub generation: i64,
    pub rollback_of: Option<String>,
    pub created: Timestamp,
    pub created_by: String,
    pub updates: Vec<DeployedUpdateOut>,
    /// Clients per state.
    pub summary: std::collections::BTreeMap<String, i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeployedUpdateOut {
    pub id: String,
    pub title: String,
    pub removed: Option<Timestamp>,
}

/// One client's state of a deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentClientOut {
    pub computer: String,
    pub client_id: String,
    /// not_received, received, waiting, waiting_for_window, content_unavailable,
    /// downloading, installing, succeeded, failed, restart_pending.
    pub state: String,
    pub detail: String,
    pub time: Option<Timestamp>,
    pub generation: i64,
    pub last_success: Option<Timestamp>,
    /// A recurring deployment whose last success is older than its interval (P25).
    pub overdue: bool,
}

/// `koshin deployments show NAME`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentDetail {
    #[serde(flatten)]
    pub deployment: DeploymentOut,
    pub clients: Vec<DeploymentClientOut>,
}

/// `POST /api/v1/deployments/{key}/disable`: optionally re-enabled at a time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DisableDeployment {
    #[serde(default)]
    pub reenable_at: Option<Timestamp>,
}

/// `POST /api/v1/deployments/{key}/remove-update`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RemoveUpdate {
    pub update: String,
}

/// `POST /api/v1/deployments/{key}/rollback`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// The name of the rollback deployment (default: "<name> rollback").
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /api/v1/collections/{key}/windows`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewWindow {
    pub name: String,
    /// `daily 22:00 3h`, `weekly sat 22:00 4h`, `monthly 2 tue 22:00 3h`, `once 2026-12-01 22:00 2h`, + ` utc`.
    pub schedule: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowOut {
    pub collection: String,
    pub name: String,
    pub schedule: String,
}

/// What a client gets for one deployment targeted at it (`GET /api/v1/mp/deployments`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentPolicy {
    pub id: String,
    pub name: String,
    pub generation: i64,
    pub available: String,
    pub deadline: Option<String>,
    pub utc: bool,
    pub allow_postpone: bool,
    pub notification: String,
    pub suppress_restart_servers: bool,
    pub suppress_restart_workstations: bool,
    pub install_from_dp: bool,
    pub recurrence_days: Option<u32>,
    /// Send the inventory right after the scan that evaluates this deployment (I4).
    #[serde(default)]
    pub expedited_inventory: bool,
    /// Install the listed versions even where a newer one is installed (a rollback).
    pub rollback: bool,
    pub updates: Vec<DeployedUpdate>,
    /// The maintenance windows of the client's collections.
    pub windows: Vec<String>,
    /// The distribution points that hold the content now.
    pub content_on: Vec<String>,
    /// A scan-tool deployment: the package holding the offline scan catalog, which the
    /// client scans against instead of installing anything (I4).
    #[serde(default)]
    pub scan_catalog: Option<DeployedFile>,
}

/// The first line of a deployment definitions file (P14).
pub const DEFINITIONS_MAGIC: &str = "KOSHIN-DEPLOYMENTS 1";
/// The `format` of its signed payload.
pub const DEFINITIONS_FORMAT: &str = "koshin-deployment-definitions";

/// Update groups (the approvals) and deployment definitions tested at one site, signed with
/// its archive key, to be imported into another (P14: from a test site into production).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentDefinitions {
    pub format: String,
    /// The exporting site's code.
    pub site: String,
    pub created: Timestamp,
    pub signed_by: String,
    /// The exporting site's content version: the updates were as it had them then.
    pub content_version: i64,
    pub groups: Vec<UpdateGroupOut>,
    pub deployments: Vec<DeploymentDefinition>,
}

/// One deployment as it was defined: the collection by name (collections are the sites'
/// own), the update group by name (it travels in the same file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentDefinition {
    #[serde(flatten)]
    pub spec: NewDeployment,
    pub enabled: bool,
}

/// What an import of deployment definitions did. Nothing is applied unless all of it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DefinitionsImported {
    pub site: String,
    pub groups_created: Vec<String>,
    pub groups_unchanged: Vec<String>,
    pub deployments_created: Vec<String>,
    pub deployments_unchanged: Vec<String>,
    /// The new deployments were enabled (otherwise they wait, disabled, for review).
    pub enabled: bool,
}

/// The scan tool (I2): a program deployment whose clients fetch the site's offline scan
/// catalog from their distribution point and scan against it.
pub const PROGRAM_OFFLINE_SCAN: &str = "offline-scan";
/// The scan tool's "expedited" program: the same, and the inventory goes right after the
/// scan rather than at the next inventory cycle (I4).
pub const PROGRAM_OFFLINE_SCAN_EXPEDITED: &str = "offline-scan-expedited";
/// Every program a deployment can run.
pub const PROGRAMS: [&str; 2] = [PROGRAM_OFFLINE_SCAN, PROGRAM_OFFLINE_SCAN_EXPEDITED];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeployedUpdate {
    pub update_id: String,
    pub title: String,
    pub files: Vec<DeployedFile>,
}

/// A binary package version of a deployed update, at `pool_path` on a distribution point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeployedFile {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub pool_path: String,
    pub sha256: String,
    pub size: u64,
}

/// `POST /api/v1/mp/deployment-status`: a client's state of a deployment, with the install
/// agent's status messages (112xx).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStatusReport {
    pub deployment_id: String,
    pub generation: i64,
    pub state: String,
    #[serde(default)]
    pub detail: String,
    pub time: Timestamp,
    /// Install agent status messages: (message id, severity letter, insertion strings).
    #[serde(default)]
    pub messages: Vec<ClientStatusMessage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientStatusMessage {
    pub message_id: u32,
    pub severity: String,
    pub time: Timestamp,
    #[serde(default)]
    pub insertion_strings: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// The site hierarchy.

/// `POST /api/v1/sites/join`: a child site joins its parent.
#[derive(Clone, Deserialize, Serialize)]
pub struct JoinRequest {
    pub code: String,
    /// primary or secondary.
    pub kind: String,
    /// Where the parent reaches the child.
    pub url: String,
    pub join_token: String,
    /// What the parent is to present to the child.
    pub parent_to_child_token: String,
    /// A PKCS#10 request (PEM) for the child's link certificate, sent when the child joins
    /// over `https://`: the parent's CA signs it for "site CODE" (absent from older
    /// children).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
    /// The child's site CA certificate (PEM): the parent verifies the child's server
    /// certificate with it when it calls the child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_ca_certificate: Option<String>,
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinRequest")
            .field("code", &self.code)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("join_token", &"<redacted>")
            .field("parent_to_child_token", &"<redacted>")
            .field("csr", &self.csr.is_some())
            .field("site_ca_certificate", &self.site_ca_certificate.is_some())
            .finish()
    }
}

/// The parent's answer to a join.
#[derive(Clone, Deserialize, Serialize)]
pub struct JoinResponse {
    pub parent_code: String,
    /// What the child is to present to the parent.
    pub child_to_parent_token: String,
    /// The child's link certificate (PEM), signed by the parent's CA over the request's
    /// key, when the child sent a request over `https://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// The parent's site CA certificate (PEM): the only root the child trusts for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
}

impl std::fmt::Debug for JoinResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinResponse")
            .field("parent_code", &self.parent_code)
            .field("child_to_parent_token", &"<redacted>")
            .field("client_certificate", &self.client_certificate.is_some())
            .finish()
    }
}

/// A link to the parent or a child, as `koshin site links` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteLinkOut {
    pub code: String,
    pub relation: String,
    pub kind: String,
    pub url: String,
    pub joined: Timestamp,
    pub last_seen: Option<Timestamp>,
    pub last_error: Option<String>,
    pub notify_pending: bool,
    pub replicated_content_version: i64,
    /// For the parent link: the last global-data change applied here.
    #[serde(default)]
    pub global_seq: i64,
    /// Whether the link is down (its last contact failed).
    #[serde(default)]
    pub down: bool,
    /// Client data and status messages waiting here for the parent.
    #[serde(default)]
    pub queued_up: i64,
}

/// `POST /api/v1/sites/join-tokens`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewJoinToken {
    #[serde(default)]
    pub hours: Option<u32>,
}

#[derive(Clone, Deserialize, Serialize)]
pub struct JoinTokenOut {
    pub token: String,
    pub expires: Timestamp,
}

impl std::fmt::Debug for JoinTokenOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinTokenOut")
            .field("token", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}

/// `POST /api/v1/sites/notify` (parent to child) and `/hello` (child to parent).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteMessage {
    pub from: String,
    #[serde(default)]
    pub url: Option<String>,
}

/// A client of a child site, as the child forwards its state messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForwardedClient {
    pub client_id: String,
    pub name: String,
    pub os: String,
    pub os_release: String,
    pub architecture: String,
    /// The site the client is enrolled at.
    pub site: String,
    pub agent_version: String,
}

/// `GET /api/v1/sites/global?since=SEQ`: the global data (collections, deployments) that
/// changed at the parent after change `since`, each object whole as it is now, and what
/// was deleted. `full` answers hold every object (the child drops replicated objects that
/// are not in them). `totals` is what the parent holds in all, to verify the child's copy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GlobalData {
    pub site: String,
    pub since: i64,
    pub upto: i64,
    #[serde(default)]
    pub full: bool,
    pub collections: Vec<GlobalCollection>,
    pub deployments: Vec<GlobalDeployment>,
    pub deleted_collections: Vec<String>,
    pub deleted_deployments: Vec<String>,
    pub totals: GlobalTotals,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalTotals {
    /// Collections other than All Systems.
    pub collections: i64,
    pub deployments: i64,
}

/// A collection as it replicates: its members by client id (a child keeps those that are
/// its own clients or its children's), and its maintenance windows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalCollection {
    pub collection_id: String,
    pub name: String,
    pub comment: String,
    pub built_in: bool,
    pub members: Vec<String>,
    pub windows: Vec<GlobalWindow>,
    pub created_ms: i64,
    pub created_by: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalWindow {
    pub name: String,
    pub spec: String,
}

/// A deployment as it replicates, with its content package's definition (the child
/// distributes it to its own distribution points).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalDeployment {
    pub deployment_id: String,
    pub name: String,
    pub update_group: String,
    pub collection_id: String,
    pub package: Option<GlobalPackage>,
    pub available: String,
    pub deadline: Option<String>,
    pub utc: bool,
    pub allow_postpone: bool,
    pub notification: String,
    pub suppress_servers: bool,
    pub suppress_workstations: bool,
    pub download_first: bool,
    pub recurrence_days: Option<i64>,
    #[serde(default)]
    pub expedited_inventory: bool,
    #[serde(default)]
    pub program: Option<String>,
    pub enabled: bool,
    pub reenable_ms: Option<i64>,
    pub generation: i64,
    pub rollback_of: Option<String>,
    /// (update id, removed at) of each update the deployment snapshotted.
    pub updates: Vec<(String, Option<i64>)>,
    pub created_ms: i64,
    pub created_by: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalPackage {
    pub package_id: String,
    pub name: String,
    pub priority: i64,
    pub source_version: i64,
    pub files: Vec<GlobalPackageFile>,
    pub updates: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalPackageFile {
    pub sha256: String,
    pub name: String,
    pub size: i64,
    pub filename: String,
}

/// A client's state of a replicated deployment, as a child forwards it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForwardedDeploymentStatus {
    pub deployment_id: String,
    pub generation: i64,
    pub state: String,
    pub detail: String,
    pub time_ms: i64,
}

/// One item a child sends up: a client's state messages (`states`), a client's state of a
/// replicated deployment (`deployment-status`), or a status message (`status`, with its
/// origin `SITE:id`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpwardItem {
    #[serde(default = "UpwardItem::states")]
    pub kind: String,
    #[serde(default)]
    pub client: Option<ForwardedClient>,
    #[serde(default)]
    pub batch: Option<StateBatch>,
    #[serde(default)]
    pub deployment_status: Option<ForwardedDeploymentStatus>,
    #[serde(default)]
    pub status: Option<serde_json::Value>,
}

impl UpwardItem {
    fn states() -> String {
        "states".into()
    }
}

/// `POST /api/v1/mp/inventory`: a client's hardware and software inventory, whole
/// (`base` None) or as the changes since the inventory the site acknowledged last (`base`
/// its hash). `hash` names the inventory after the changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InventoryReport {
    pub hash: String,
    #[serde(default)]
    pub base: Option<String>,
    /// Properties whose values changed (all of them, in a whole report), with every value.
    pub properties: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub removed_properties: Vec<String>,
    /// `name:arch` → version of packages installed or changed (all, in a whole report).
    pub packages: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub removed_packages: Vec<String>,
    pub collected_ms: i64,
}

/// The site's answer: what it holds now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryAck {
    pub hash: String,
    pub properties: i64,
    pub packages: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(extra: &str) -> String {
        format!(
            r#"{{"policy_version": 3, "site": "CS1", "update_points": [], "content_version": 1,
            "scan_interval_minutes": 1, "metadata_ttl_minutes": 1, "first_scan_window_minutes": 1,
            "policy_poll_minutes": 1, "created": "2024-01-01T00:00:00Z"{extra}}}"#
        )
    }

    /// An older site's policy (no classes) still parses, and a newer site's source kind
    /// gives a source this program skips rather than a policy it cannot read.
    #[test]
    fn machine_policy_classes_are_optional_and_forward_compatible() {
        let p: MachinePolicy = serde_json::from_str(&policy("")).expect("old policy");
        assert!(p.inventory_classes.is_empty());
        assert!(
            !serde_json::to_string(&p)
                .expect("json")
                .contains("inventory_classes")
        );
        let p: MachinePolicy = serde_json::from_str(&policy(
            r#", "inventory_classes": [
                {"class": "app", "property": "tier",
                 "source": {"kind": "file", "path": "/etc/app.conf", "key": "TIER"}},
                {"class": "app", "property": "v", "source": {"kind": "command", "argv": ["echo", "it's"]}},
                {"class": "k", "property": "fwd", "source": {"kind": "sysctl", "key": "net.ipv4.ip_forward"}},
                {"class": "x", "property": "y", "source": {"kind": "registry", "hive": "HKLM"}}
            ]"#,
        ))
        .expect("new policy");
        let shown: Vec<String> = p
            .inventory_classes
            .iter()
            .map(|c| c.source.to_string())
            .collect();
        assert_eq!(
            shown,
            [
                "file /etc/app.conf (key-value) TIER",
                "command echo 'it'\\''s'",
                "sysctl net.ipv4.ip_forward",
                "unknown"
            ]
        );
        let back: MachinePolicy =
            serde_json::from_str(&serde_json::to_string(&p).expect("json")).expect("again");
        assert_eq!(back.inventory_classes[..3], p.inventory_classes[..3]);
    }
}

/// The first line of an offline scan catalog file.
pub const OFFLINE_CATALOG_MAGIC: &str = "KOSHIN-SCAN-CATALOG 1";
/// The `format` of its signed payload.
pub const OFFLINE_CATALOG_FORMAT: &str = "koshin-offline-scan-catalog";
/// The Debian package the site wraps its offline scan catalog in, so that it travels in a
/// content package to the distribution points like any other file.
pub const OFFLINE_CATALOG_DEB: &str = "koshin-scan-catalog";
/// Where that Debian package holds the catalog.
pub const OFFLINE_CATALOG_DEB_PATH: &str = "usr/share/koshin/scan-catalog.ksc";
/// The content package the site keeps it in.
pub const OFFLINE_CATALOG_PACKAGE: &str = "Offline Scan Catalog";
/// The `format` of an offline scan's results file.
pub const SCAN_RESULTS_FORMAT: &str = "koshin-offline-scan-results";

/// An offline scan catalog (I1, seeds 002–003): what a scan needs — the site's client
/// catalog for its selected products — signed by the top-level site, for clients that
/// cannot reach any site (`koshin-agent scan --offline-catalog FILE`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OfflineCatalog {
    pub format: String,
    /// The site that made it.
    pub site: String,
    pub created: Timestamp,
    /// The fingerprint of the key that signed it.
    pub signed_by: String,
    /// The products it covers (the site's selected products).
    pub products: Vec<String>,
    pub catalog: ClientCatalog,
}

/// What `koshin catalog offline` made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfflineCatalogOut {
    pub site: String,
    pub content_version: i64,
    pub updates: u64,
    pub bytes: u64,
    pub created: Timestamp,
    pub signed_by: String,
    /// The content package that carries it to the distribution points (its id), and the
    /// version of the Debian package inside.
    #[serde(default)]
    pub package_id: String,
    #[serde(default)]
    pub deb_version: String,
}

/// `POST /api/v1/catalog/scan-tool`: set up the scan tool's objects (I2) at the top-level
/// site, first for one test client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanToolSetup {
    /// The test client (name or client id): the only member of the pre-production collection.
    pub test_client: String,
    /// The clients that get the scan tool once it is broadened (a collection, by id or
    /// name; default All Systems).
    #[serde(default)]
    pub eligible: Option<String>,
}

/// The scan tool's objects and where its rollout stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanToolOut {
    pub test_client: String,
    pub test_client_id: String,
    /// The content package holding the offline scan catalog.
    pub package_id: String,
    pub pre_production_id: String,
    pub pre_production: String,
    pub collection_id: String,
    pub collection: String,
    /// The collection the scan tool goes to once broadened.
    pub eligible_id: String,
    pub eligible: String,
    /// The normal program's deployment (recurring) and the expedited one.
    pub deployment_id: String,
    pub deployment: String,
    pub expedited_deployment_id: String,
    pub expedited_deployment: String,
    pub set: Timestamp,
    pub set_by: String,
    /// When the limiting rule was removed, so that every eligible client gets it (I3).
    pub broadened: Option<Timestamp>,
    /// The clients the scan tool goes to now.
    pub members: i64,
    /// The test client's state on the scan tool's deployments (`succeeded` once its results
    /// are in), and the detail it gave.
    pub test_client_state: Option<String>,
    pub test_client_detail: Option<String>,
}

/// `POST /api/v1/catalog/scan-tool/broaden`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanToolBroaden {
    /// Broaden even though the test client has not reported a scan with the tool.
    #[serde(default)]
    pub force: bool,
}

/// The client an offline scan ran on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfflineClient {
    /// Its client id: the enrolled one, or one the agent made for its offline scans.
    pub client_id: String,
    pub name: String,
    pub os: String,
    pub os_release: String,
    pub architecture: String,
    pub agent_version: String,
}

/// The results of an offline scan, written to a file for `koshin import scan-results`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfflineScanResults {
    pub format: String,
    pub client: OfflineClient,
    /// The site whose offline catalog was scanned, and its content version.
    pub catalog_site: String,
    pub content_version: i64,
    /// The state messages and the scan record, in the batches the agent would send.
    pub batches: Vec<StateBatch>,
}

/// What importing scan results did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanResultsImported {
    pub computer: String,
    pub client_id: String,
    /// The client was not known here: it was registered (it has no credential).
    pub registered: bool,
    pub stored: u64,
    pub duplicate: bool,
    pub unknown_updates: u64,
}
