//! `cairn check` and `cairn deep-check`: a file's health, or every file's under a vdrive
//! directory, and their repair (through the gateway's `POST /check`).

use crate::api;
use crate::commands::{resolve, vdrive_join, vdrive_path};
use crate::gateway_client::GatewayClient;
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{self, IsTerminal};
use std::path::Path;

/// Check a file's health: which servers hold which of its shares, whether it can be read
/// (at least k distinct shares) and whether it is as spread as the node's encoding asks
/// (happiness). Exits 1 if the file cannot be read back.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// A cap (read or verify) or a vdrive path.
    #[arg(value_name = "CAP|PATH")]
    source: String,
    #[command(flatten)]
    actions: ActionArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Check (and with --repair, repair) every file under a vdrive directory. One line per
/// file, a summary at the end; exits 1 if any file stays unrecoverable.
#[derive(clap::Args)]
pub struct DeepCheckArgs {
    /// The directory (default: the root).
    #[arg(value_name = "PATH", default_value = "/")]
    path: String,
    #[command(flatten)]
    actions: ActionArgs,
    /// One JSON object per file (with its `path`), and the summary as the last line.
    #[arg(long)]
    pub json: bool,
}

/// What a check does besides looking: prove every share, repair, renew leases.
#[derive(clap::Args, Clone, Copy)]
struct ActionArgs {
    /// Read and prove every share (a full read of each) instead of believing the servers.
    #[arg(long)]
    verify: bool,
    /// Regenerate missing (and, with --verify, bad) shares and place them until each file
    /// is healthy.
    #[arg(long)]
    repair: bool,
    /// Renew this node's lease on each file at every server holding its shares (for the
    /// server's lease period from now: 31 days unless its [storage] lease_period says
    /// otherwise).
    #[arg(long)]
    add_lease: bool,
}

fn check_cap(client: &GatewayClient, cap: &str, actions: ActionArgs) -> Result<api::Checked> {
    let flag = |on: bool| if on { "true" } else { "false" };
    let query = [
        ("cap", cap),
        ("verify", flag(actions.verify)),
        ("repair", flag(actions.repair)),
        ("add_lease", flag(actions.add_lease)),
    ];
    client.post_json("/check", &query)
}

pub fn check(dir: &Path, args: CheckArgs) -> Result<()> {
    let client = GatewayClient::for_node(dir)?;
    let cap = resolve(&client, &args.source)?;
    let checked = check_cap(&client, &cap, args.actions)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&checked)?);
    } else {
        print_report(&args.source, &checked);
    }
    if !checked.recoverable {
        bail!(
            "{} cannot be read back: {} of the {} shares it needs were found",
            args.source,
            checked.distinct_shares,
            checked.k
        );
    }
    Ok(())
}

fn print_report(name: &str, c: &api::Checked) {
    println!("file:       {name}");
    println!("verify cap: {}", c.cap);
    if c.literal {
        println!("health:     healthy (a literal file: its bytes are in its cap)");
        return;
    }
    let readable = if c.recoverable {
        "recoverable"
    } else {
        "UNRECOVERABLE"
    };
    println!(
        "shares:     {} of {} found, {} needed: {readable}",
        c.distinct_shares, c.n, c.k
    );
    let health = if c.healthy { "healthy" } else { "UNHEALTHY" };
    println!("happiness:  {} ({} wanted): {health}", c.happiness, c.happy);
    println!(
        "servers:    {} asked, {} answered",
        c.servers_asked, c.servers_answered
    );
    for (share, servers) in &c.holders {
        let short: Vec<&str> = servers.iter().map(|s| &s[..12.min(s.len())]).collect();
        println!("  share {share:>3}: {}", short.join(" "));
    }
    for fault in &c.faults {
        println!("fault:      {fault}");
    }
    if c.leases_renewed > 0 {
        println!("leases:     renewed on {} servers", c.leases_renewed);
    }
    if let Some(r) = &c.repair {
        println!(
            "repair:     placed {} shares, happiness {} -> {}, {} read, {} written{}",
            r.shares_placed,
            r.happiness_before,
            r.happiness_after,
            bytesize::ByteSize(r.bytes_downloaded),
            bytesize::ByteSize(r.bytes_uploaded),
            r.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
}

pub fn deep_check(dir: &Path, args: DeepCheckArgs) -> Result<()> {
    let client = GatewayClient::for_node(dir)?;
    let root = vdrive_path(&args.path)?.to_owned();
    let bar = match io::stderr().is_terminal() && !args.json {
        true => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} checked {msg}") {
                bar.set_style(style);
            }
            Some(bar)
        }
        false => None,
    };
    let actions = args.actions;
    let mut summary = api::DeepCheckSummary::default();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        let entries: Vec<api::Entry> = client.get("/vdrive/list", &[("path", &dir)])?;
        for entry in entries.into_iter().rev() {
            let path = vdrive_join(&dir, &entry.name);
            let Some(cap) = entry.cap else {
                dirs.push(path);
                continue;
            };
            let line = match check_cap(&client, &cap, actions) {
                Ok(checked) => file_line(&path, summary.count(&checked), &checked, args.json),
                Err(e) => {
                    summary.failed();
                    match args.json {
                        true => {
                            serde_json::json!({"path": path, "error": format!("{e:#}")}).to_string()
                        }
                        false => format!("ERROR          {path}: {e:#}"),
                    }
                }
            };
            match &bar {
                Some(bar) => {
                    bar.println(line);
                    bar.inc(1);
                    bar.set_message(path);
                }
                None => println!("{line}"),
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let s = &summary;
    match args.json {
        true => println!("{}", serde_json::json!({ "summary": s })),
        false => eprintln!(
            "cairn: {} files: {} healthy, {} unhealthy, {} unrecoverable, {} repaired, {} \
             errors; {} moved; {} leases renewed",
            s.objects,
            s.healthy,
            s.unhealthy,
            s.unrecoverable,
            s.repaired,
            s.errors,
            bytesize::ByteSize(s.bytes_moved),
            s.leases_renewed
        ),
    }
    if s.unrecoverable > 0 || s.errors > 0 {
        bail!(
            "{} files cannot be read back, {} could not be checked",
            s.unrecoverable,
            s.errors
        );
    }
    Ok(())
}

/// A deep-check's line for one file: its state (see [`api::DeepCheckSummary::count`]) and
/// shares, or the whole report as JSON, with its path.
fn file_line(path: &str, state: &str, checked: &api::Checked, json: bool) -> String {
    if json {
        let mut value = serde_json::to_value(checked).unwrap_or_default();
        value["path"] = serde_json::Value::String(path.to_owned());
        return value.to_string();
    }
    format!(
        "{state:<14} {path} ({} of {} shares, happiness {} of {})",
        checked.distinct_shares, checked.n, checked.happiness, checked.happy
    )
}
