//! Operators' CLI: `xiezhi failures list|show|stats|replay|discard`, `xiezhi tokens
//! create|list|revoke` and `xiezhi audit`. The CLI runs where the store's credentials are, so
//! it shows personal data unmasked, and audits what it shows as the API does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::filter::FailureQuery;
use super::replay::{self, ReplaySettings, Target};
use super::view::present;
use crate::config::Config;
use crate::pipeline::Runtime;
use crate::store::ops::{NewAudit, Role};
use crate::store::{FailureRow, status_name};

#[derive(Debug, clap::Subcommand)]
pub enum FailuresCommand {
    /// List failures (newest ids last; page with --after).
    List {
        #[command(flatten)]
        filter: FailureQuery,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one failure: raw payload, errors with their fields, lineage, history.
    Show { id: String },
    /// Count failures by connector and error code.
    Stats {
        #[command(flatten)]
        filter: FailureQuery,
        #[arg(long)]
        json: bool,
    },
    /// Replay failures through the current connector definitions and schema.
    Replay {
        /// Failure ids (or give a filter).
        ids: Vec<String>,
        #[command(flatten)]
        filter: FailureQuery,
        /// Report how many would pass now, and why the rest would not; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// At most this many records per second (0: unlimited).
        #[arg(long, default_value_t = 0)]
        rate: u32,
        /// Failures read, normalised and sent per step.
        #[arg(long, default_value_t = 1000)]
        page_size: u32,
        #[arg(long)]
        json: bool,
    },
    /// Discard a failure for good (a reason is required).
    Discard {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Correct a failed record (JSON Patch or the whole record); it replays once a second
    /// person approves it.
    Edit {
        id: String,
        /// File with a JSON Patch (RFC 6902) against the record as `show` prints it (`-`: stdin).
        #[arg(long, conflicts_with = "record", required_unless_present = "record")]
        patch: Option<PathBuf>,
        /// File with the whole edited record (`-`: stdin).
        #[arg(long)]
        record: Option<PathBuf>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Approve someone else's edit; its replay runs now.
    Approve { edit_id: String },
    /// Reject someone else's edit.
    Reject {
        edit_id: String,
        #[arg(long)]
        reason: String,
    },
    /// List edits, newest first.
    Edits {
        /// pending, approved, rejected or superseded.
        #[arg(long)]
        status: Option<String>,
        /// Edits of one failure.
        #[arg(long)]
        failure: Option<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// Create an API token; it is printed once and stored only as a hash.
    Create {
        #[arg(long, value_enum)]
        role: Role,
        /// A name to recognise it by in the audit log (default: the role and a timestamp).
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by id or name.
    Revoke { id_or_name: String },
}

/// Who runs the CLI, for history and audit: `cli:<login>`.
pub fn cli_actor() -> String {
    let user = crate::config::process_env("XIEZHI_ACTOR")
        .or_else(|| crate::config::process_env("USER"))
        .unwrap_or_else(|| "unknown".into());
    format!("cli:{user}")
}

pub async fn failures(config: Config, cmd: FailuresCommand) -> anyhow::Result<i32> {
    let rt = Arc::new(Runtime::build(config).await?);
    let actor = cli_actor();
    match cmd {
        FailuresCommand::List { filter, json } => {
            let f = filter.parse(Utc::now())?;
            let mut rows = rt.store.list_failures(&f).await?;
            present(
                rt.store.as_ref(),
                &rt.schema,
                &cli_reader(&actor),
                "failures.list",
                None,
                filter.to_json(),
                &mut rows,
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print_list(&rows);
            }
            Ok(0)
        }
        FailuresCommand::Show { id } => {
            let Some(mut row) = rt.store.get_failure(&id).await? else {
                eprintln!("no failure with id `{id}`");
                return Ok(2);
            };
            let history = rt.store.failure_events(&id).await?;
            present(
                rt.store.as_ref(),
                &rt.schema,
                &cli_reader(&actor),
                "failures.show",
                Some(id.clone()),
                json!({}),
                std::slice::from_mut(&mut row),
            )
            .await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"failure": row, "history": history}))?
            );
            Ok(0)
        }
        FailuresCommand::Stats { filter, json } => {
            let f = filter.parse(Utc::now())?;
            let total = rt.store.count_failures(&f).await?;
            let counts = rt.store.failure_counts(&f).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"total": total, "by_code": counts}))?
                );
            } else {
                println!("{:<16} {:<28} {:>8}", "connector", "code", "failures");
                for c in &counts {
                    println!("{:<16} {:<28} {:>8}", c.connector, c.code, c.count);
                }
                println!("{total} failures match");
            }
            Ok(0)
        }
        FailuresCommand::Replay {
            ids,
            filter,
            dry_run,
            rate,
            page_size,
            json,
        } => {
            let target = if ids.is_empty() {
                Target::Filter(filter.parse(Utc::now())?)
            } else if filter != FailureQuery::default() {
                anyhow::bail!("give failure ids or a filter, not both");
            } else {
                Target::Ids(ids)
            };
            let cancel = CancellationToken::new();
            let writers = if dry_run {
                Vec::new()
            } else {
                rt.spawn_writers(&cancel)
            };
            let settings = ReplaySettings {
                dry_run,
                rate_per_sec: rate,
                page_size: page_size.max(1),
                actor,
            };
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} failures  {per_sec}  eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let report = replay::replay(&rt, target, &settings, |p| {
                bar.set_length(p.total.max(0) as u64);
                bar.set_position(p.done.max(0) as u64);
            })
            .await;
            bar.finish_and_clear();
            cancel.cancel();
            for w in writers {
                w.await??;
            }
            let report = report?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let verb = if dry_run { "would pass" } else { "passed" };
                println!(
                    "{} failures: {} {verb}, {} still failing, {} skipped{}",
                    report.selected,
                    report.passed,
                    report.still_failing,
                    report.skipped,
                    if dry_run {
                        String::new()
                    } else {
                        format!(", {} stored and resolved", report.resolved)
                    }
                );
                for (code, n) in &report.still_failing_by_code {
                    println!("  still failing: {n:>6} × {code}");
                }
                for (why, n) in &report.skipped_reasons {
                    println!("  skipped:       {n:>6} × {why}");
                }
            }
            Ok(0)
        }
        FailuresCommand::Edit {
            id,
            patch,
            record,
            note,
        } => {
            let correction = match (patch, record) {
                (Some(p), None) => super::edits::Correction::Patch(
                    serde_json::from_str(&read_arg_file(&p)?)
                        .with_context(|| format!("{}: not a JSON Patch", p.display()))?,
                ),
                (None, Some(r)) => super::edits::Correction::Record(
                    serde_json::from_str(&read_arg_file(&r)?)
                        .with_context(|| format!("{}: not JSON", r.display()))?,
                ),
                _ => anyhow::bail!("give --patch FILE or --record FILE"),
            };
            let edit = super::edits::edit(&rt, &id, correction, note, &actor).await?;
            println!("{}", serde_json::to_string_pretty(&edit)?);
            eprintln!(
                "edit {} is pending: another person with the approver role runs `xiezhi failures approve {}`",
                edit.id, edit.id
            );
            Ok(0)
        }
        FailuresCommand::Approve { edit_id } => {
            let cancel = CancellationToken::new();
            let writers = rt.spawn_writers(&cancel);
            let report = super::edits::approve(&rt, &edit_id, &actor).await;
            cancel.cancel();
            for w in writers {
                w.await??;
            }
            let report = report?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(if report.resolved == 1 { 0 } else { 1 })
        }
        FailuresCommand::Reject { edit_id, reason } => {
            if reason.trim().is_empty() {
                anyhow::bail!("--reason: a rejection needs a reason");
            }
            super::edits::reject(&rt, &edit_id, &actor, reason.trim()).await?;
            println!("rejected {edit_id}");
            Ok(0)
        }
        FailuresCommand::Edits { status, failure } => {
            let status = status
                .map(|s| s.parse())
                .transpose()
                .map_err(|e| anyhow::anyhow!("--status: {e}"))?;
            let edits = rt.store.list_edits(status, failure.as_deref(), 100).await?;
            println!("{}", serde_json::to_string_pretty(&edits)?);
            Ok(0)
        }
        FailuresCommand::Discard { id, reason } => {
            if reason.trim().is_empty() {
                anyhow::bail!("--reason: a discard needs a reason");
            }
            match super::discard(rt.store.as_ref(), &id, reason.trim(), &actor).await? {
                super::Discarded::Done => {
                    println!("discarded {id}");
                    Ok(0)
                }
                super::Discarded::NotFound => {
                    eprintln!("no failure with id `{id}`");
                    Ok(2)
                }
                super::Discarded::NotOpen(st) => {
                    eprintln!("failure `{id}` is {}; not discarded", status_name(st));
                    Ok(1)
                }
            }
        }
    }
}

/// A file named on the command line, or stdin for `-`.
fn read_arg_file(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading stdin")?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// The CLI runs where the store's credentials are: it reads unmasked, and is audited.
fn cli_reader(actor: &str) -> super::view::Reader {
    super::view::Reader {
        actor: actor.to_owned(),
        sees_personal_data: true,
        via: "cli",
    }
}

fn print_list(rows: &[FailureRow]) {
    println!(
        "{:<32} {:<9} {:<10} {:<20} {:<9} {:<28} {:>3}  key",
        "id", "stage", "connector", "stream", "status", "codes", "n"
    );
    for r in rows {
        let mut codes: Vec<&str> = r.errors.iter().map(|e| e.code.as_str()).collect();
        codes.dedup();
        println!(
            "{:<32} {:<9} {:<10} {:<20} {:<9} {:<28} {:>3}  {}",
            r.id,
            r.stage.as_str(),
            r.connector,
            r.stream,
            status_name(r.status),
            codes.join(","),
            r.attempts,
            r.natural_key
                .as_deref()
                .or(r.upstream_id.as_deref())
                .unwrap_or("-")
        );
    }
    if let Some(last) = rows.last() {
        eprintln!("({} shown; next page: --after {})", rows.len(), last.id);
    }
}

pub async fn tokens(config: Config, cmd: TokensCommand) -> anyhow::Result<i32> {
    let rt = Runtime::build(config).await?;
    let actor = cli_actor();
    match cmd {
        TokensCommand::Create { role, name } => {
            let name =
                name.unwrap_or_else(|| format!("{role}-{}", Utc::now().format("%Y%m%d%H%M%S%3f")));
            let (token, row) = super::tokens::create(rt.store.as_ref(), &name, role).await?;
            rt.store
                .append_audit(&NewAudit {
                    actor,
                    action: "tokens.create".into(),
                    target: Some(row.id.clone()),
                    filter: json!({}),
                    count: 1,
                    outcome: json!({"name": row.name, "role": row.role}),
                })
                .await?;
            eprintln!(
                "token `{}` ({}) created; it is shown only now:",
                row.name, row.role
            );
            println!("{token}");
            Ok(0)
        }
        TokensCommand::List => {
            println!(
                "{:<36} {:<28} {:<9} {:<25} revoked",
                "id", "name", "role", "created"
            );
            for t in rt.store.list_tokens().await? {
                println!(
                    "{:<36} {:<28} {:<9} {:<25} {}",
                    t.id,
                    t.name,
                    t.role,
                    t.created_at.to_rfc3339(),
                    t.revoked_at.map_or_else(|| "-".into(), |r| r.to_rfc3339())
                );
            }
            Ok(0)
        }
        TokensCommand::Revoke { id_or_name } => {
            let done = rt.store.revoke_token(&id_or_name).await?;
            rt.store
                .append_audit(&NewAudit {
                    actor,
                    action: "tokens.revoke".into(),
                    target: Some(id_or_name.clone()),
                    filter: json!({}),
                    count: i64::from(done),
                    outcome: json!({"revoked": done}),
                })
                .await?;
            if done {
                println!("revoked {id_or_name}");
                Ok(0)
            } else {
                eprintln!("no unrevoked token with id or name `{id_or_name}`");
                Ok(2)
            }
        }
    }
}

/// `xiezhi audit`: the audit log, oldest first.
pub async fn audit(config: Config, after: i64, limit: u32, json: bool) -> anyhow::Result<i32> {
    let rt = Runtime::build(config).await?;
    let entries = rt.store.list_audit(after, limit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        for e in &entries {
            println!(
                "{:>6} {} {:<24} {:<18} {:>6}  {}  {}",
                e.seq,
                e.at.to_rfc3339(),
                e.entry.actor,
                e.entry.action,
                e.entry.count,
                e.entry.target.as_deref().unwrap_or("-"),
                e.entry.filter
            );
        }
    }
    Ok(0)
}
