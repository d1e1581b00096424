//! `cairn alias` and `cairn import-vdrive`: the names a node gives directories it holds caps
//! for (its root is `cairn`), and the one-time copy of a grid's old global tree into its root.

use crate::api;
use crate::failure::{failure, Kind};
use crate::gateway_client::GatewayClient;
use crate::nodedir;
use anyhow::Result;
use cairn_codec::dirnode::DirCap;
use std::path::Path;

/// Name the directories you hold caps for: paths then start with NAME: (`cairn ls
/// docs:/reports`). The node's own root is `cairn`, and plain /paths are under it.
#[derive(clap::Args)]
pub struct AliasArgs {
    #[command(subcommand)]
    action: AliasAction,
}

#[derive(clap::Subcommand)]
enum AliasAction {
    /// Give the directory CAP (a URI:CAIRN-DIR: write cap, or a -RO: read cap someone
    /// shared) the name NAME.
    Add {
        name: String,
        #[arg(value_name = "CAP")]
        cap: String,
    },
    /// Each alias with its caps (the read cap is what to share for read-only access).
    List {
        /// One JSON object per alias.
        #[arg(long)]
        json: bool,
    },
}

pub fn alias(dir: &Path, args: AliasArgs) -> Result<()> {
    match args.action {
        AliasAction::Add { name, cap } => {
            let cap = match DirCap::parse(&cap) {
                Ok(Some(cap @ (DirCap::Write(_) | DirCap::Read(_)))) => cap,
                Ok(Some(DirCap::Verify(_))) => {
                    return Err(failure(
                        Kind::BadInput,
                        "a verify cap reads nothing: give a write or read cap",
                    ))
                }
                Ok(None) => {
                    return Err(failure(
                        Kind::BadInput,
                        format!("{cap:?} is not a directory cap (URI:CAIRN-DIR:...)"),
                    ))
                }
                Err(e) => return Err(failure(Kind::BadInput, e.to_string())),
            };
            nodedir::add_alias(dir, &name, &cap)
                .map_err(|e| failure(Kind::BadInput, format!("{e:#}")))?;
            println!("{name}: added");
        }
        AliasAction::List { json } => {
            for (name, cap) in nodedir::aliases(dir)? {
                let (write, read) = match &cap {
                    DirCap::Write(w) => (Some(w.to_string()), w.read_cap().to_string()),
                    other => (None, other.to_string()),
                };
                match json {
                    true => println!(
                        "{}",
                        serde_json::json!({"alias": name, "write_cap": write, "read_cap": read})
                    ),
                    false => {
                        println!("{name}:");
                        if let Some(write) = write {
                            println!("  write cap: {write}");
                        }
                        println!("  read cap:  {read}");
                    }
                }
            }
        }
    }
    Ok(())
}

/// Copy the grid's old global vdrive tree (from before each node had its own root) into
/// this node's tree, under PATH. Directories already there are reused and files already
/// there kept, so it is safe to run again.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// Where the old tree's root goes (default: the node's root).
    #[arg(long, value_name = "PATH", default_value = "/")]
    to: String,
}

pub fn import_vdrive(dir: &Path, args: ImportArgs) -> Result<()> {
    let client = GatewayClient::for_node(dir)?;
    let to = crate::commands::vdrive_path(&args.to)?;
    let imported: api::Imported = client.post_json("/vdrive/import", &[("to", to)])?;
    println!(
        "imported {} directories and {} files into {to}",
        imported.directories, imported.files
    );
    Ok(())
}
