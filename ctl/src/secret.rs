//! `swarmctl secret …` and `swarmctl config …`: create, list, inspect and remove the named blobs
//! services mount. Both have the same shape in the API, so one set of commands serves both.

use std::io::Read;

use clap::Subcommand;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use swarm_model::Config;
use swarm_model::Secret;
use swarm_model::SecretSpec;
use swarm_model::Timestamp;

use super::CtlError;
use super::FilteredListArgs;
use super::check_format;
use super::for_each;
use super::list_query;
use super::parse_labels;
use super::print_json;
use super::table;
use super::tasks::human_since;
use crate::client::ApiClient;
use crate::client::encode_query;

#[derive(Subcommand)]
pub enum BlobCmd {
    /// Create one from a file, or from stdin with `-`; prints its ID.
    Create {
        /// Label, `key=value` (repeatable).
        #[arg(short = 'l', long = "label")]
        labels: Vec<String>,
        name: String,
        /// File with the data, or `-` for stdin.
        file: String,
    },
    /// List them.
    #[command(alias = "list")]
    Ls(FilteredListArgs),
    /// Show them in detail (JSON).
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove them.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// What differs between secrets and configs on the command line.
pub trait Blob: DeserializeOwned + Serialize {
    const NOUN: &'static str;
    /// The API collection, e.g. `/secrets`.
    const PATH: &'static str;
    /// Whether `ls` has docker's DRIVER column (secrets only).
    const DRIVER_COLUMN: bool;
    /// Whether empty data is refused before asking the daemon, as docker does for secrets.
    const NEEDS_DATA: bool;
    fn id(&self) -> &str;
    fn spec(&self) -> &SecretSpec;
    fn created_at(&self) -> &Timestamp;
    fn updated_at(&self) -> &Timestamp;
}

impl Blob for Secret {
    const NOUN: &'static str = "secret";
    const PATH: &'static str = "/secrets";
    const DRIVER_COLUMN: bool = true;
    const NEEDS_DATA: bool = true;
    fn id(&self) -> &str {
        &self.id
    }
    fn spec(&self) -> &SecretSpec {
        &self.spec
    }
    fn created_at(&self) -> &Timestamp {
        &self.created_at
    }
    fn updated_at(&self) -> &Timestamp {
        &self.updated_at
    }
}

impl Blob for Config {
    const NOUN: &'static str = "config";
    const PATH: &'static str = "/configs";
    const DRIVER_COLUMN: bool = false;
    const NEEDS_DATA: bool = false;
    fn id(&self) -> &str {
        &self.id
    }
    fn spec(&self) -> &SecretSpec {
        &self.spec
    }
    fn created_at(&self) -> &Timestamp {
        &self.created_at
    }
    fn updated_at(&self) -> &Timestamp {
        &self.updated_at
    }
}

pub async fn run<T: Blob>(client: &ApiClient, cmd: BlobCmd) -> Result<(), CtlError> {
    match cmd {
        BlobCmd::Create { labels, name, file } => {
            let spec = SecretSpec {
                name,
                labels: parse_labels(&labels)?,
                data: Some(read_data::<T>(&file)?),
                ..Default::default()
            };
            let resp: Value = client.post(&format!("{}/create", T::PATH), &spec).await?;
            let id = resp["ID"].as_str().ok_or_else(|| {
                CtlError::Usage(format!("the daemon's answer to {} create has no ID: {resp}", T::NOUN))
            })?;
            println!("{id}");
            Ok(())
        }
        BlobCmd::Ls(args) => ls::<T>(client, args).await,
        BlobCmd::Inspect { names } => {
            let mut out = Vec::new();
            for n in names {
                out.push(
                    client
                        .get::<Value>(&format!("{}/{}", T::PATH, encode_query(&n)))
                        .await?,
                );
            }
            print_json(&out)
        }
        BlobCmd::Rm { names } => {
            for_each(names, "remove", |n| async move {
                client.delete(&format!("{}/{}", T::PATH, encode_query(&n))).await?;
                println!("{n}");
                Ok(())
            })
            .await
        }
    }
}

/// The data of `create`, from a file or stdin, with docker's messages.
fn read_data<T: Blob>(file: &str) -> Result<Vec<u8>, CtlError> {
    let (what, data) = if file == "-" {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| CtlError::Usage(format!("error reading from STDIN: {e}")))?;
        ("STDIN", data)
    } else {
        let data = std::fs::read(file).map_err(|e| CtlError::Usage(format!("error reading from {file}: {e}")))?;
        (file, data)
    };
    if T::NEEDS_DATA && data.is_empty() {
        return Err(CtlError::Usage(format!("error reading from {what}: data is empty")));
    }
    Ok(data)
}

async fn ls<T: Blob>(client: &ApiClient, args: FilteredListArgs) -> Result<(), CtlError> {
    check_format(&args.list.format)?;
    let path = format!("{}{}", T::PATH, list_query(&args.filters)?);
    let mut items: Vec<T> = client.get(&path).await?;
    items.sort_by(|a, b| a.spec().name.cmp(&b.spec().name).then(a.id().cmp(b.id())));
    if args.list.quiet {
        for i in &items {
            println!("{}", i.id());
        }
        return Ok(());
    }
    if args.list.format == "json" {
        return print_json(&items);
    }
    print!("{}", render_ls(&items));
    Ok(())
}

/// docker's `secret ls` / `config ls` table: full IDs, ages as "5 seconds ago".
fn render_ls<T: Blob>(items: &[T]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let mut row = vec![i.id().to_string(), i.spec().name.clone()];
            if T::DRIVER_COLUMN {
                row.push(i.spec().driver.as_ref().map(|d| d.name.clone()).unwrap_or_default());
            }
            row.push(human_since(i.created_at()));
            row.push(human_since(i.updated_at()));
            row
        })
        .collect();
    if T::DRIVER_COLUMN {
        table::render(&["ID", "NAME", "DRIVER", "CREATED", "UPDATED"], &rows)
    } else {
        table::render(&["ID", "NAME", "CREATED", "UPDATED"], &rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_docker_columns() {
        let s = Secret {
            id: "abc".into(),
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
            spec: SecretSpec {
                name: "db".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let out = render_ls(&[s]);
        let mut lines = out.lines();
        assert_eq!(
            lines.next(),
            Some("ID    NAME   DRIVER   CREATED                  UPDATED")
        );
        assert_eq!(
            lines.next(),
            Some("abc   db              Less than a second ago   Less than a second ago")
        );
        let c = Config {
            id: "def".into(),
            spec: SecretSpec {
                name: "app".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let out = render_ls(&[c]);
        assert!(out.starts_with("ID    NAME   CREATED   UPDATED\n"), "{out}");
    }
}
