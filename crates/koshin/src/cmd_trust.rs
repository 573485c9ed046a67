//! `koshin login|logout`, `koshin admins add|list|disable`, `koshin audit`: administrators
//! with roles, their tokens, and the audit log. A login token is kept per site in
//! `$XDG_CONFIG_HOME/koshin/tokens.json` (default `~/.config/koshin/`), mode 0600.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::Subcommand;
use koshin_wire::{AdminOut, AuditOut, AuditQuery, LoginRequest, NewAdmin, TokenResponse};

use crate::client::Api;
use crate::output;

fn tokens_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("koshin").join("tokens.json"))
}

fn read_tokens() -> BTreeMap<String, String> {
    tokens_file()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The token `koshin login` stored for `site`, if any.
pub fn stored_token(site: &str) -> Option<String> {
    read_tokens().remove(site.trim_end_matches('/'))
}

fn store_token(site: &str, token: Option<&str>) -> anyhow::Result<PathBuf> {
    let path = tokens_file().ok_or_else(|| anyhow!("neither XDG_CONFIG_HOME nor HOME is set"))?;
    let mut all = read_tokens();
    match token {
        Some(t) => all.insert(site.trim_end_matches('/').to_string(), t.to_string()),
        None => all.remove(site.trim_end_matches('/')),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(&all)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// A password: prompted without echo on a terminal, else the first line of stdin.
fn password(prompt: &str) -> anyhow::Result<String> {
    let p = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).context("cannot read the password")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if p.is_empty() {
        anyhow::bail!("no password given");
    }
    Ok(p)
}

pub async fn login(
    api: &Api,
    site: &str,
    name: String,
    hours: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let req = LoginRequest {
        name,
        password: password("Password: ")?,
        hours,
    };
    let t: TokenResponse = api.post_anonymous("/api/v1/login", &req, "login").await?;
    let path = store_token(site, Some(&t.token))?;
    println!(
        "Logged in to {} as {} ({}), until {}; token kept in {}",
        site.trim_end_matches('/'),
        t.name,
        t.role,
        t.expires
            .as_ref()
            .map(output::time)
            .unwrap_or_else(|| "revoked".into()),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn logout(api: &Api, site: &str) -> anyhow::Result<ExitCode> {
    let _: serde_json::Value = api.post("/api/v1/logout", &(), "logout").await?;
    store_token(site, None)?;
    println!("Logged out: the token is revoked at the site and forgotten here");
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum AdminsCommand {
    /// Create an administrator; the password is prompted (or read from stdin).
    Add {
        name: String,
        /// Full Administrator, Software Update Manager, Operations Administrator or
        /// Read-only Analyst.
        #[arg(long)]
        role: String,
        /// A collection the administrator is limited to (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// Administrators and their roles.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable an administrator and revoke every token of theirs.
    Disable { name: String },
    /// Limit an administrator to the clients of these collections (by name or id); with
    /// none, or All Systems, they see every client.
    Scope {
        name: String,
        collections: Vec<String>,
    },
}

pub async fn admins(api: &Api, cmd: AdminsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminsCommand::Add { name, role, scopes } => {
            let req = NewAdmin {
                name,
                role,
                password: password("Password for the new administrator: ")?,
                scopes,
            };
            let a: AdminOut = api
                .post("/api/v1/admins", &req, "add administrator")
                .await?;
            println!("Administrator {} created ({})", a.name, a.role);
        }
        AdminsCommand::List { json } => {
            let list: Vec<AdminOut> = api.get("/api/v1/admins", &(), "administrators").await?;
            output::list(
                json,
                &list,
                &["NAME", "ROLE", "SCOPES", "CREATED", "BY", "DISABLED"],
                |a| {
                    vec![
                        a.name.clone(),
                        a.role.clone(),
                        a.scopes.join(", "),
                        output::time(&a.created),
                        a.created_by.clone(),
                        a.disabled.as_ref().map(output::time).unwrap_or_default(),
                    ]
                },
            )?;
        }
        AdminsCommand::Disable { name } => {
            let path = format!(
                "/api/v1/admins/{}/disable",
                crate::cmd_updates::urlencode(&name)
            );
            let _: serde_json::Value = api.post(&path, &(), "disable administrator").await?;
            println!("Administrator {name} disabled; every token of theirs is revoked");
        }
        AdminsCommand::Scope { name, collections } => {
            let path = format!(
                "/api/v1/admins/{}/scopes",
                crate::cmd_updates::urlencode(&name)
            );
            let a: AdminOut = api
                .post(
                    &path,
                    &koshin_wire::ScopesChange {
                        scopes: collections,
                    },
                    "set scopes",
                )
                .await?;
            if a.scopes.is_empty() {
                println!("{} sees every client", a.name);
            } else {
                println!("{} sees the clients of {}", a.name, a.scopes.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(
    api: &Api,
    since: Option<String>,
    limit: Option<u32>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let since = match since {
        Some(d) => {
            let d = output::parse_duration(&d)?;
            Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(d.as_secs() as i64))
        }
        None => None,
    };
    let list: Vec<AuditOut> = api
        .get("/api/v1/audit", &AuditQuery { since, limit }, "audit log")
        .await?;
    output::list(
        json,
        &list,
        &["TIME", "WHO", "ACTION", "TARGET", "DETAIL", "FROM"],
        |e| {
            vec![
                output::time(&e.time),
                format!("{} ({})", e.actor, e.role),
                e.action.clone(),
                e.target.clone(),
                e.detail.clone(),
                e.source.clone(),
            ]
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
