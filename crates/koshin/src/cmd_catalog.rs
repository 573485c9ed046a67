//! `koshin catalog export|import|trust-key|keys`: the signed catalog export file of a site
//! (docs/catalog-export.md), and `koshin sup import` for an internet-facing update point
//! that cannot reach its site.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use koshin_server::http::export::{ImportAnswer, TrustedKey};

use crate::client::Api;

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Export the catalog to FILE, signed with the site's archive key.
    Export {
        file: PathBuf,
        /// Only the updates changed after this content version (an incremental export,
        /// imported only onto a site at that version).
        #[arg(long)]
        since: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Make the offline scan catalog now and save it as FILE: the catalog a client that
    /// cannot reach any site scans against (`koshin-agent scan --offline-catalog FILE`),
    /// signed with the site's archive key. Reports 6710.
    Offline {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The offline catalog's one sync host in the hierarchy (I1): `site` (this top-level
    /// site makes it every N days) or a client (which fetches it every N days). Without
    /// HOST: which it is. A second one is refused; --remove first.
    SyncHost {
        host: Option<String>,
        #[arg(long, default_value_t = koshin_server::offline::DEFAULT_REFRESH_DAYS)]
        refresh_days: u32,
        #[arg(long, conflicts_with = "host")]
        remove: bool,
        #[arg(long)]
        json: bool,
    },
    /// The scan tool (I2, I3): the offline catalog package, a pre-production collection with
    /// one test client, the scan tool's collection and its two program deployments.
    ScanTool {
        #[command(subcommand)]
        command: ScanToolCommand,
    },
    /// Import an export file into the site (verified, then applied in one transaction).
    Import {
        file: PathBuf,
        /// The exporting site's public archive key (its DATA/pki/archive-key.pub.asc), to
        /// trust from now on.
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Trust another site's public archive key for imports.
    TrustKey { key: PathBuf },
    /// The keys imports are verified with.
    Keys {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ScanToolCommand {
    /// Create the scan tool's objects, going first to TEST_CLIENT only.
    Setup {
        #[arg(long)]
        test_client: String,
        /// The clients it goes to once broadened (default All Systems).
        #[arg(long)]
        eligible: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The scan tool's objects and where its rollout stands.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Remove the limiting rule so every eligible client gets the scan tool (after the test
    /// client's results were checked).
    Broaden {
        /// Even though the test client has not reported a scan with the tool.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
}

fn print_scan_tool(t: &koshin_wire::ScanToolOut) {
    println!("Scan tool, set up {} by {}", t.set, t.set_by);
    let rows = [
        (
            "package",
            format!("{} (Offline Scan Catalog)", t.package_id),
        ),
        (
            "test client",
            format!(
                "{}: {}{}",
                t.test_client,
                t.test_client_state.as_deref().unwrap_or("no state yet"),
                t.test_client_detail
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
        ),
        (
            "pre-production",
            format!("{} ({})", t.pre_production, t.pre_production_id),
        ),
        (
            "collection",
            format!(
                "{} ({}): {} client(s), {}",
                t.collection,
                t.collection_id,
                t.members,
                match t.broadened {
                    Some(at) => format!("broadened to {} at {at}", t.eligible),
                    None => format!(
                        "limited to {} (koshin catalog scan-tool broaden)",
                        t.pre_production
                    ),
                }
            ),
        ),
        (
            "deployments",
            format!(
                "{} ({}), {} ({})",
                t.deployment, t.deployment_id, t.expedited_deployment, t.expedited_deployment_id
            ),
        ),
    ];
    for (k, v) in rows {
        println!("  {k:<15} {v}");
    }
}

fn spinner(msg: String) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(msg);
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

pub async fn run(api: &Api, command: CatalogCommand) -> anyhow::Result<ExitCode> {
    match command {
        CatalogCommand::Export { file, since, json } => {
            let path = match since {
                Some(v) => format!("/api/v1/catalog/export?since={v}"),
                None => "/api/v1/catalog/export".to_string(),
            };
            let pb = indicatif::ProgressBar::new_spinner();
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg} {bytes} ({bytes_per_sec})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            pb.set_message("exporting the catalog");
            pb.enable_steady_tick(std::time::Duration::from_millis(120));
            let bytes = api
                .get_bytes(&path, "export the catalog", |n| pb.set_position(n))
                .await;
            pb.finish_and_clear();
            let bytes = bytes?;
            let (h, _) = koshin_server::export::read_header(&bytes)
                .map_err(|e| anyhow::anyhow!("the site sent something unexpected: {e}"))?;
            write_atomically(&file, &bytes)?;
            if json {
                crate::output::json(&serde_json::json!({
                    "file": file.display().to_string(),
                    "bytes": bytes.len(),
                    "site": h.site,
                    "content_version": h.content_version,
                    "since": h.since,
                    "updates": h.updates,
                    "signed_by": h.signed_by,
                    "created": h.created,
                }))?;
            } else {
                println!(
                    "Exported {} updates of site {} at content version {}{} to {} ({} bytes, signed by {})",
                    h.updates,
                    h.site,
                    h.content_version,
                    if h.since > 0 {
                        format!(" (changes after {})", h.since)
                    } else {
                        String::new()
                    },
                    file.display(),
                    bytes.len(),
                    h.signed_by
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::Offline { file, json } => {
            let pb = spinner("making the offline scan catalog".to_string());
            let bytes = api
                .get_bytes(
                    "/api/v1/catalog/offline",
                    "make the offline catalog",
                    |_| {},
                )
                .await;
            pb.finish_and_clear();
            let bytes = bytes?;
            let (fields, _) = koshin_apt::signed::read_header(
                koshin_wire::OFFLINE_CATALOG_MAGIC,
                "koshin offline scan catalog",
                &bytes,
            )
            .map_err(|e| anyhow::anyhow!("the site sent something unexpected: {e}"))?;
            write_atomically(&file, &bytes)?;
            let field = |k: &str| fields.get(k).cloned().unwrap_or_default();
            if json {
                crate::output::json(&serde_json::json!({
                    "file": file.display().to_string(),
                    "bytes": bytes.len(),
                    "site": field("Site"),
                    "content_version": field("Content-Version").parse::<i64>().unwrap_or(0),
                    "updates": field("Updates").parse::<u64>().unwrap_or(0),
                    "products": field("Products"),
                    "signed_by": field("Signed-By"),
                    "created": field("Created"),
                }))?;
            } else {
                println!(
                    "Offline scan catalog of site {} at content version {}: {} updates to {} ({} bytes, signed by {})",
                    field("Site"),
                    field("Content-Version"),
                    field("Updates"),
                    file.display(),
                    bytes.len(),
                    field("Signed-By")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::SyncHost {
            host,
            refresh_days,
            remove,
            json,
        } => {
            let h: Option<koshin_server::offline::SyncHost> = match (host, remove) {
                (_, true) => {
                    api.post(
                        "/api/v1/catalog/sync-host/remove",
                        &(),
                        "remove the sync host",
                    )
                    .await?
                }
                (Some(host), false) => Some(
                    api.post(
                        "/api/v1/catalog/sync-host",
                        &serde_json::json!({"host": host, "refresh_days": refresh_days}),
                        "designate the sync host",
                    )
                    .await?,
                ),
                (None, false) => {
                    api.get("/api/v1/catalog/sync-host", &(), "sync host")
                        .await?
                }
            };
            if json {
                crate::output::json(&h)?;
            } else {
                match (h, remove) {
                    (None, true) => println!("No sync host was designated"),
                    (Some(h), true) => println!("{} is no longer the sync host", h.host),
                    (None, false) => println!(
                        "No sync host: the offline catalog is made only when asked (koshin catalog offline FILE)"
                    ),
                    (Some(h), false) => println!(
                        "The offline catalog's sync host is {} (every {} days; set {} by {})",
                        if h.host == "site" {
                            "this site".to_string()
                        } else {
                            format!("client {}", h.host)
                        },
                        h.refresh_days,
                        h.set,
                        h.set_by
                    ),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::ScanTool { command } => {
            let (t, json): (Option<koshin_wire::ScanToolOut>, bool) = match command {
                ScanToolCommand::Setup {
                    test_client,
                    eligible,
                    json,
                } => (
                    Some(
                        api.post(
                            "/api/v1/catalog/scan-tool",
                            &koshin_wire::ScanToolSetup {
                                test_client,
                                eligible,
                            },
                            "set up the scan tool",
                        )
                        .await?,
                    ),
                    json,
                ),
                ScanToolCommand::Show { json } => (
                    api.get("/api/v1/catalog/scan-tool", &(), "scan tool")
                        .await?,
                    json,
                ),
                ScanToolCommand::Broaden { force, json } => (
                    Some(
                        api.post(
                            "/api/v1/catalog/scan-tool/broaden",
                            &koshin_wire::ScanToolBroaden { force },
                            "broaden the scan tool",
                        )
                        .await?,
                    ),
                    json,
                ),
            };
            if json {
                crate::output::json(&t)?;
            } else {
                match &t {
                    Some(t) => print_scan_tool(t),
                    None => println!(
                        "The scan tool is not set up (koshin catalog scan-tool setup --test-client NAME)"
                    ),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::Import { file, key, json } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            if let Some(k) = key {
                let t = trust(api, &k).await?;
                if !json {
                    println!("Trusting key {} ({})", t.fingerprint, t.user_ids.join(", "));
                }
            }
            let pb = spinner(format!(
                "importing {} ({} bytes)",
                file.display(),
                bytes.len()
            ));
            let answer: anyhow::Result<ImportAnswer> = api
                .post_bytes("/api/v1/catalog/import", bytes, "import the catalog")
                .await;
            pb.finish_and_clear();
            print_answer(&answer?, json)?;
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::TrustKey { key } => {
            let t = trust(api, &key).await?;
            println!("Trusting key {} ({})", t.fingerprint, t.user_ids.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::Keys { json } => {
            let keys: Vec<TrustedKey> = api
                .get("/api/v1/catalog/keys", &(), "list the catalog keys")
                .await?;
            if json {
                crate::output::json(&keys)?;
            } else {
                crate::output::table(
                    &["FINGERPRINT", "SOURCE", "USER IDS"],
                    &keys
                        .iter()
                        .map(|k| {
                            vec![
                                k.fingerprint.clone(),
                                k.source.clone(),
                                k.user_ids.join(", "),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) async fn trust(api: &Api, key: &Path) -> anyhow::Result<TrustedKey> {
    let text =
        std::fs::read_to_string(key).with_context(|| format!("cannot read {}", key.display()))?;
    api.post_bytes(
        "/api/v1/catalog/keys",
        text.into_bytes(),
        "trust the export key",
    )
    .await
}

fn print_answer(a: &ImportAnswer, json: bool) -> anyhow::Result<()> {
    if json {
        crate::output::json(a)
    } else {
        println!("{}", a.message);
        Ok(())
    }
}

pub(crate) fn write_atomically(file: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(file)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", file.display(), e.error))?;
    Ok(())
}

/// `koshin sup import FILE --data DIR`: offline, into an internet-facing update point.
pub fn sup_import(
    file: &Path,
    data: &Path,
    key: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    // Only an update point's folder takes keys (not any folder named by mistake).
    koshin_server::isup::InternetSup::identity(data)?;
    if let Some(k) = key {
        let text =
            std::fs::read_to_string(k).with_context(|| format!("cannot read {}", k.display()))?;
        let (fingerprint, user_ids) = koshin_server::export::trust_key(data, &text)?;
        if !json {
            println!("Trusting key {fingerprint} ({})", user_ids.join(", "));
        }
    }
    let pb = spinner(format!(
        "importing {} ({} bytes)",
        file.display(),
        bytes.len()
    ));
    let answer = koshin_server::isup::import_file(data, &bytes);
    pb.finish_and_clear();
    print_answer(&answer?, json)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Bring the results of an offline scan (`koshin-agent scan --offline-catalog FILE
    /// --results OUT`) into the site; they count like any scan. A client the site does not
    /// know is registered by them.
    ScanResults {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub async fn import(api: &Api, cmd: ImportCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ImportCommand::ScanResults { file, json } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let results: koshin_wire::OfflineScanResults = serde_json::from_str(&text)
                .with_context(|| format!("{} is not offline scan results", file.display()))?;
            let out: koshin_wire::ScanResultsImported = api
                .post(
                    "/api/v1/import/scan-results",
                    &results,
                    "import scan results",
                )
                .await?;
            if json {
                crate::output::json(&out)?;
            } else {
                println!(
                    "{} ({}): {} state message(s) stored{}{}",
                    out.computer,
                    out.client_id,
                    out.stored,
                    if out.duplicate {
                        "; these results were imported before"
                    } else {
                        ""
                    },
                    if out.registered {
                        "; the client was not known here and is registered (it enrols to talk to the site)"
                    } else {
                        ""
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
