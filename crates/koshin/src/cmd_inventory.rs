//! `koshin inventory classes`: custom inventory classes — properties every client reads
//! from a file, a command or a sysctl and reports as `custom.CLASS.PROPERTY`, which
//! collection queries then read like built-in inventory (docs/inventory.md).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use koshin_wire::{
    InventoryClassDelete, InventoryClassOut, InventoryClassProperty, InventoryClassesDeleted,
    InventorySource,
};

use crate::client::Api;
use crate::cmd_updates::urlencode;
use crate::output;

#[derive(Subcommand)]
pub enum InventoryCommand {
    /// Custom inventory classes.
    Classes {
        #[command(subcommand)]
        command: ClassesCommand,
    },
}

#[derive(Subcommand)]
pub enum ClassesCommand {
    /// Every class property and where clients read it.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Adds a property to a class (making the class), or changes where it is read.
    Set(SetArgs),
    /// Deletes one property of a class, or the whole class.
    Delete {
        class: String,
        property: Option<String>,
    },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["file", "command", "sysctl"])))]
pub struct SetArgs {
    /// Lower-case letters, digits, '_' and '-'.
    pub class: String,
    /// Lower-case letters, digits, '_' and '-'.
    pub property: String,
    /// Read from this file (an absolute path; under the agent's root).
    #[arg(long, requires = "key")]
    pub file: Option<String>,
    /// The file's format.
    #[arg(long, default_value = "key-value", requires = "file",
          value_parser = ["key-value", "ini", "json", "os-release"])]
    pub format: String,
    /// What to read in the file: KEY (key-value, os-release), section.key (ini), a dotted
    /// path such as app.nodes.0.name (json).
    #[arg(long, requires = "file")]
    pub key: Option<String>,
    /// Run this program with these arguments, without a shell (the rest of the line);
    /// each non-empty line of its output is one value.
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "ARG")]
    pub command: Option<Vec<String>>,
    /// Read this kernel parameter (net.ipv4.ip_forward).
    #[arg(long, value_name = "KEY")]
    pub sysctl: Option<String>,
}

impl SetArgs {
    fn source(self) -> (String, String, InventorySource) {
        let source = match (self.file, self.key, self.command, self.sysctl) {
            (Some(path), Some(key), _, _) => InventorySource::File {
                path,
                format: self.format,
                key,
            },
            (_, _, Some(argv), _) => InventorySource::Command { argv },
            (_, _, _, Some(key)) => InventorySource::Sysctl { key },
            // clap requires one source, and a key with a file.
            _ => InventorySource::Unknown,
        };
        (self.class, self.property, source)
    }
}

const CLASSES: &str = "/api/v1/inventory/classes";

pub async fn run(api: &Api, cmd: InventoryCommand) -> anyhow::Result<ExitCode> {
    let InventoryCommand::Classes { command } = cmd;
    match command {
        ClassesCommand::List { json } => {
            let list: Vec<InventoryClassOut> = api.get(CLASSES, &(), "inventory classes").await?;
            output::list(json, &list, &["PROPERTY", "SOURCE", "CHANGED", "BY"], |c| {
                vec![
                    c.path.clone(),
                    c.source.to_string(),
                    output::time(&c.changed),
                    c.changed_by.clone(),
                ]
            })?;
        }
        ClassesCommand::Set(args) => {
            let (class, property, source) = args.source();
            let c: InventoryClassOut = api
                .post(
                    CLASSES,
                    &InventoryClassProperty {
                        class,
                        property,
                        source,
                    },
                    "set inventory class property",
                )
                .await?;
            println!(
                "{} is read from {}; clients collect it with their next machine policy",
                c.path, c.source
            );
        }
        ClassesCommand::Delete { class, property } => {
            let r: InventoryClassesDeleted = api
                .post(
                    &format!("{CLASSES}/{}/delete", urlencode(&class)),
                    &InventoryClassDelete {
                        property: property.clone(),
                    },
                    "delete inventory class",
                )
                .await?;
            match property {
                Some(p) => println!("custom.{class}.{p} deleted"),
                None => println!("Class {class} deleted ({} properties)", r.deleted),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: InventoryCommand,
    }

    fn set(args: &[&str]) -> Result<(String, String, InventorySource), String> {
        let cli = Cli::try_parse_from(
            ["koshin", "classes", "set"]
                .into_iter()
                .chain(args.iter().copied()),
        )
        .map_err(|e| e.to_string())?;
        match cli.command {
            InventoryCommand::Classes {
                command: ClassesCommand::Set(a),
            } => Ok(a.source()),
            _ => Err("not set".into()),
        }
    }

    #[test]
    fn one_source_each_time() {
        let (c, p, s) =
            set(&["app", "tier", "--file", "/etc/app.conf", "--key", "TIER"]).expect("file");
        assert_eq!((c.as_str(), p.as_str()), ("app", "tier"));
        assert_eq!(
            s,
            InventorySource::File {
                path: "/etc/app.conf".into(),
                format: "key-value".into(),
                key: "TIER".into()
            }
        );
        let (_, _, s) = set(&[
            "app",
            "v",
            "--command",
            "dpkg-query",
            "-W",
            "-f",
            "${Version}",
            "--",
            "x",
        ])
        .expect("command");
        assert_eq!(
            s,
            InventorySource::Command {
                argv: ["dpkg-query", "-W", "-f", "${Version}", "--", "x"]
                    .map(String::from)
                    .to_vec()
            }
        );
        let (_, _, s) = set(&["k", "fwd", "--sysctl", "net.ipv4.ip_forward"]).expect("sysctl");
        assert_eq!(
            s,
            InventorySource::Sysctl {
                key: "net.ipv4.ip_forward".into()
            }
        );
        let (_, _, s) = set(&[
            "app", "n", "--file", "/a.json", "--format", "json", "--key", "a.0",
        ])
        .expect("json");
        assert!(matches!(s, InventorySource::File { format, .. } if format == "json"));
        // None, two, a file without a key, a bad format.
        assert!(set(&["app", "tier"]).is_err());
        assert!(
            set(&[
                "app", "tier", "--sysctl", "a.b", "--file", "/x", "--key", "K"
            ])
            .is_err()
        );
        assert!(set(&["app", "tier", "--file", "/x"]).is_err());
        assert!(
            set(&[
                "app", "tier", "--file", "/x", "--key", "K", "--format", "yaml"
            ])
            .is_err()
        );
    }
}
