//! `koshin collections`: the built-in All Systems and collections of direct members and
//! rules (a query, a limiting, included and excluded collections) with every version of the
//! rules kept — what deployments target and what administrators' scopes name.

use std::process::ExitCode;

use clap::Subcommand;
use koshin_wire::{
    CollectionDetail, CollectionOut, CollectionRollback, CollectionRules, CollectionVersionOut,
    EvaluationOut, MembersChange, MembersChanged, NewCollection, RulesChange,
};

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
    /// Create a collection: direct members (`add`), and rules — a query, a limiting
    /// collection, included and excluded collections (docs/inventory.md).
    Create {
        name: String,
        #[arg(long, default_value = "")]
        comment: String,
        /// Clients this query matches are members, e.g. `required(KB-1001)`.
        #[arg(long)]
        query: Option<String>,
        /// Members are drawn only from this collection (default All Systems).
        #[arg(long = "limit")]
        limiting: Option<String>,
        /// Members of this collection are members too (repeat for several).
        #[arg(long = "include")]
        includes: Vec<String>,
        /// Members of this collection never are (repeat for several).
        #[arg(long = "exclude")]
        excludes: Vec<String>,
    },
    /// Change a collection's rules; what you leave out stays. Saved as the next version,
    /// and membership is evaluated at once.
    Set {
        name: String,
        #[arg(long, conflicts_with = "no_query")]
        query: Option<String>,
        /// Drop the query.
        #[arg(long)]
        no_query: bool,
        /// The limiting collection (`"All Systems"` for none).
        #[arg(long = "limit")]
        limiting: Option<String>,
        /// Replace the included collections (repeat for several).
        #[arg(long = "include", conflicts_with = "no_includes")]
        includes: Vec<String>,
        #[arg(long)]
        no_includes: bool,
        /// Replace the excluded collections (repeat for several).
        #[arg(long = "exclude", conflicts_with = "no_excludes")]
        excludes: Vec<String>,
        #[arg(long)]
        no_excludes: bool,
        /// Why, kept with this version.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Every saved version of a collection's rules.
    History {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Save an earlier version's rules again (as the next version) and evaluate.
    Rollback {
        name: String,
        #[arg(long)]
        version: i64,
    },
    /// Evaluate membership now: the clients changed since the last pass, then NAME in full
    /// (or every collection, with --full).
    Evaluate {
        name: Option<String>,
        #[arg(long)]
        full: bool,
        #[arg(long)]
        json: bool,
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
                if let Some(o) = &k.origin {
                    println!("Replicated from site {o}: change it there");
                }
                if !k.built_in {
                    let r = &k.rules;
                    println!("Rules, version {}:", k.version);
                    println!("  query     {}", r.query.as_deref().unwrap_or("-"));
                    println!(
                        "  limit     {}",
                        r.limiting.as_deref().unwrap_or("All Systems")
                    );
                    if !r.includes.is_empty() {
                        println!("  include   {}", r.includes.join(", "));
                    }
                    if !r.excludes.is_empty() {
                        println!("  exclude   {}", r.excludes.join(", "));
                    }
                    if let Some(t) = &k.evaluated {
                        println!("Evaluated {}", output::time(t));
                    }
                }
                println!();
                output::table(
                    &["CLIENT", "CLIENT ID", "VIA", "ADDED", "BY"],
                    &c.member_list
                        .iter()
                        .map(|m| {
                            vec![
                                m.name.clone(),
                                m.client_id.clone(),
                                m.via.clone(),
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
        CollectionsCommand::Create {
            name,
            comment,
            query,
            limiting,
            includes,
            excludes,
        } => {
            let c: CollectionOut = api
                .post(
                    "/api/v1/collections",
                    &NewCollection {
                        name,
                        comment,
                        rules: CollectionRules {
                            query,
                            limiting,
                            includes,
                            excludes,
                        },
                    },
                    "create collection",
                )
                .await?;
            println!(
                "Collection {} created ({}), {} member(s)",
                c.name, c.id, c.members
            );
        }
        CollectionsCommand::Set {
            name,
            query,
            no_query,
            limiting,
            includes,
            no_includes,
            excludes,
            no_excludes,
            note,
        } => {
            let list =
                |given: Vec<String>, none: bool| (none || !given.is_empty()).then_some(given);
            let change = RulesChange {
                query,
                no_query,
                limiting,
                includes: list(includes, no_includes),
                excludes: list(excludes, no_excludes),
                note,
            };
            let c: CollectionOut = api
                .post(&format!("{}/rules", path(&name)), &change, "set rules")
                .await?;
            println!(
                "{} is at version {}: {} member(s)",
                c.name, c.version, c.members
            );
        }
        CollectionsCommand::History { name, json } => {
            let list: Vec<CollectionVersionOut> = api
                .get(&format!("{}/history", path(&name)), &(), "history")
                .await?;
            output::list(
                json,
                &list,
                &[
                    "VERSION", "SAVED", "BY", "QUERY", "LIMIT", "INCLUDE", "EXCLUDE", "NOTE",
                ],
                |v| {
                    vec![
                        format!("{}{}", v.version, if v.current { " *" } else { "" }),
                        output::time(&v.saved),
                        v.saved_by.clone(),
                        v.rules.query.clone().unwrap_or_else(|| "-".into()),
                        v.rules
                            .limiting
                            .clone()
                            .unwrap_or_else(|| "All Systems".into()),
                        v.rules.includes.join(","),
                        v.rules.excludes.join(","),
                        v.note.clone(),
                    ]
                },
            )?;
        }
        CollectionsCommand::Rollback { name, version } => {
            let c: CollectionOut = api
                .post(
                    &format!("{}/rollback", path(&name)),
                    &CollectionRollback { version },
                    "rollback",
                )
                .await?;
            println!(
                "{} has version {version}'s rules again, as version {}: {} member(s)",
                c.name, c.version, c.members
            );
        }
        CollectionsCommand::Evaluate { name, full, json } => {
            let e: EvaluationOut = match &name {
                Some(n) => {
                    api.post(&format!("{}/evaluate", path(n)), &(), "evaluate")
                        .await?
                }
                None => {
                    api.post(
                        "/api/v1/collections/evaluate",
                        &serde_json::json!({ "full": full }),
                        "evaluate",
                    )
                    .await?
                }
            };
            if json {
                output::json(&e)?;
            } else {
                println!(
                    "{} collection(s) evaluated, {} client(s) judged: {} joined, {} left",
                    e.collections, e.clients, e.joined, e.left
                );
            }
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
