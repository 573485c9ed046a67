//! `koshin collections`: the built-in All Systems and collections with direct members —
//! what deployments target and what administrators' scopes name.

use std::process::ExitCode;

use clap::Subcommand;
use koshin_wire::{CollectionDetail, CollectionOut, MembersChange, MembersChanged, NewCollection};

use crate::client::Api;
use crate::cmd_updates::urlencode;
use crate::output;

#[derive(Subcommand)]
pub enum CollectionsCommand {
    /// Collections, with how many members you may see.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One collection and its members.
    Show {
        /// Name or collection id.
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Create a collection with direct members.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Add clients (by name or client id) to a collection.
    Add {
        name: String,
        #[arg(required = true)]
        clients: Vec<String>,
    },
    /// Remove clients from a collection.
    Remove {
        name: String,
        #[arg(required = true)]
        clients: Vec<String>,
    },
    /// Delete a collection (not All Systems, not one an administrator is scoped to).
    Delete { name: String },
    /// The clients a collection query matches now (docs/inventory.md), e.g.
    /// `chassis = server and installed(openssl) < "3.0.11-1~deb12u2"`.
    Preview {
        query: String,
        #[arg(long)]
        json: bool,
    },
}

fn path(name: &str) -> String {
    format!("/api/v1/collections/{}", urlencode(name))
}

pub async fn run(api: &Api, cmd: CollectionsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CollectionsCommand::List { json } => {
            let list: Vec<CollectionOut> =
                api.get("/api/v1/collections", &(), "collections").await?;
            output::list(
                json,
                &list,
                &["ID", "NAME", "MEMBERS", "CREATED", "BY", "COMMENT"],
                |c| {
                    vec![
                        c.id.clone(),
                        c.name.clone(),
                        c.members.to_string(),
                        output::time(&c.created),
                        c.created_by.clone(),
                        c.comment.clone(),
                    ]
                },
            )?;
        }
        CollectionsCommand::Show { name, json } => {
            let c: CollectionDetail = api.get(&path(&name), &(), "collection").await?;
            if json {
                output::json(&c)?;
            } else {
                let k = &c.collection;
                println!("{} ({})", k.name, k.id);
                if !k.comment.is_empty() {
                    println!("{}", k.comment);
                }
                println!(
                    "Created {} by {}; {} member(s){}",
                    output::time(&k.created),
                    k.created_by,
                    k.members,
                    if k.built_in { "; built in" } else { "" }
                );
                println!();
                output::table(
                    &["CLIENT", "CLIENT ID", "ADDED", "BY"],
                    &c.member_list
                        .iter()
                        .map(|m| {
                            vec![
                                m.name.clone(),
                                m.client_id.clone(),
                                output::time(&m.added),
                                m.added_by.clone(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
        CollectionsCommand::Preview { query, json } => {
            let r: serde_json::Value = api
                .post(
                    "/api/v1/collections/preview",
                    &serde_json::json!({ "query": query }),
                    "query preview",
                )
                .await?;
            if json {
                output::json(&r)?;
            } else {
                let clients = r["clients"].as_array().cloned().unwrap_or_default();
                println!(
                    "{} client(s) match {}",
                    clients.len(),
                    r["query"].as_str().unwrap_or_default()
                );
                output::table(
                    &["CLIENT", "CLIENT ID"],
                    &clients
                        .iter()
                        .map(|c| {
                            vec![
                                c["computer"].as_str().unwrap_or_default().to_string(),
                                c["client_id"].as_str().unwrap_or_default().to_string(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
        CollectionsCommand::Create { name, comment } => {
            let c: CollectionOut = api
                .post(
                    "/api/v1/collections",
                    &NewCollection { name, comment },
                    "create collection",
                )
                .await?;
            println!("Collection {} created ({})", c.name, c.id);
        }
        CollectionsCommand::Add { name, clients } => {
            let r: MembersChanged = api
                .post(
                    &format!("{}/members", path(&name)),
                    &MembersChange {
                        add: clients,
                        remove: Vec::new(),
                    },
                    "add members",
                )
                .await?;
            println!("{name}: {} added, {} member(s)", r.added, r.members);
        }
        CollectionsCommand::Remove { name, clients } => {
            let r: MembersChanged = api
                .post(
                    &format!("{}/members", path(&name)),
                    &MembersChange {
                        add: Vec::new(),
                        remove: clients,
                    },
                    "remove members",
                )
                .await?;
            println!("{name}: {} removed, {} member(s)", r.removed, r.members);
        }
        CollectionsCommand::Delete { name } => {
            let c: CollectionOut = api
                .post(&format!("{}/delete", path(&name)), &(), "delete collection")
                .await?;
            println!("Collection {} ({}) deleted", c.name, c.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
