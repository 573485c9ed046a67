//! `koshin updates list|show`: the catalog.

use std::process::ExitCode;

use clap::Subcommand;
use koshin_wire::{UpdateDetail, UpdateQuery, UpdateSummary};

use crate::client::Api;
use crate::output;

#[derive(Subcommand)]
pub enum UpdatesCommand {
    /// List updates of the catalog.
    List {
        #[arg(long)]
        classification: Option<String>,
        #[arg(long)]
        product: Option<String>,
        /// Only superseded updates.
        #[arg(long)]
        superseded: bool,
        /// Only expired updates.
        #[arg(long)]
        expired: bool,
        /// Only updates whose title, source or article contains this.
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// One update, with its packages.
    Show {
        /// Update id (or a unique prefix of it), or its article id.
        id: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(api: &Api, cmd: UpdatesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UpdatesCommand::List {
            classification,
            product,
            superseded,
            expired,
            search,
            limit,
            json,
        } => {
            let q = UpdateQuery {
                classification,
                product,
                superseded,
                expired,
                search,
                limit,
                offset: None,
            };
            let list: Vec<UpdateSummary> = api.get("/api/v1/updates", &q, "updates").await?;
            if json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|u| {
                        let state = if u.expired {
                            "expired"
                        } else if u.superseded_by.is_some() {
                            "superseded"
                        } else {
                            "active"
                        };
                        vec![
                            u.id.clone(),
                            u.revision.to_string(),
                            u.classification.clone(),
                            u.product.clone(),
                            state.to_string(),
                            u.title.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &["ID", "REV", "CLASSIFICATION", "PRODUCT", "STATE", "TITLE"],
                    &rows,
                );
                eprintln!("{} updates", list.len());
            }
        }
        UpdatesCommand::Show { id, json } => {
            let path = format!("/api/v1/updates/{}", urlencode(&id));
            let u: UpdateDetail = api.get(&path, &(), "update").await?;
            if json {
                output::json(&u)?;
            } else {
                let s = &u.summary;
                let field = |k: &str, v: &str| println!("{k:<16}{v}");
                field("Id:", &s.id);
                field("Title:", &s.title);
                field("Revision:", &s.revision.to_string());
                field("Product:", &s.product);
                field("Classification:", &s.classification);
                field("Vendor:", &u.vendor);
                field("Article:", &s.article_id);
                field("Bulletin:", s.bulletin_id.as_deref().unwrap_or("-"));
                field("Severity:", s.severity.as_deref().unwrap_or("-"));
                field("Released:", &output::time(&s.released));
                field("Revised:", &output::time(&s.revised));
                field("Superseded by:", s.superseded_by.as_deref().unwrap_or("-"));
                field(
                    "Supersedes:",
                    &if u.supersedes.is_empty() {
                        "-".into()
                    } else {
                        u.supersedes.join(", ")
                    },
                );
                field("Expired:", if s.expired { "yes" } else { "no" });
                field(
                    "Offline scan:",
                    &match u.in_offline_catalog {
                        Some(cv) => {
                            format!("yes (in the offline scan catalog at content version {cv})")
                        }
                        None => "no (not in the site's offline scan catalog)".into(),
                    },
                );
                field("Description:", &u.description);
                println!();
                let rows: Vec<Vec<String>> = u
                    .packages
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.architecture.clone(),
                            p.version.clone(),
                            p.size.to_string(),
                            p.filename.clone(),
                        ]
                    })
                    .collect();
                output::table(&["PACKAGE", "ARCH", "VERSION", "SIZE", "FILE"], &rows);
                if let Some(local) = &u.local {
                    println!();
                    println!("Local publisher definition:");
                    println!("{}", serde_json::to_string_pretty(local)?);
                }
                println!();
                if u.required_by.is_empty() {
                    println!("Required by: no computer has reported it as required.");
                } else {
                    println!("Required by:");
                    for c in &u.required_by {
                        println!("  {} ({})", c.name, c.id);
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
