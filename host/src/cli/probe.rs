//! `sonde probe inspect` and `sonde probe list`: what a probe says about
//! itself, and the WIT world it targets.

use std::io::Write;

use anyhow::{Result, anyhow};
use serde::Serialize;

use super::exit;
use crate::audit::{self, ProbeSource};
use crate::bindings::{ProbeInfo, WIT_PACKAGE, WIT_VERSION};
use crate::builtin;
use crate::report::table::terminal_safe;
use crate::runtime::{ProbeRuntime, RunLimits, RuntimeConfig, WorldSummary};

#[derive(Serialize)]
struct Inspection<'a> {
    origin: &'a str,
    world: &'a WorldSummary,
    host_world: String,
    info: &'a ProbeInfo,
}

/// `writeln!` that treats a closed pipe (`sonde probe inspect | head`) as the end of output.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {
        if let Err(e) = writeln!($out, $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(exit::OK);
            }
            return Err(e.into());
        }
    };
}

pub async fn inspect(spec: &str, json: bool) -> Result<u8> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let runtime = ProbeRuntime::new(RuntimeConfig::default())?;
    let source = ProbeSource::parse(spec).map_err(|e| anyhow!(e))?;
    let p = audit::prepare(&runtime, &source, None, "{}".into(), RunLimits::default()).await?;
    let host_world = format!("{WIT_PACKAGE}/probe@{WIT_VERSION}");
    if json {
        let doc = Inspection {
            origin: &p.loaded.origin,
            world: &p.loaded.world,
            host_world,
            info: &p.info,
        };
        w!(out, "{}", serde_json::to_string_pretty(&doc)?);
        return Ok(exit::OK);
    }
    let info = &p.info;
    let t = |s: &str| terminal_safe(s);
    w!(out, "probe:       {} {}", t(&info.name), t(&info.version));
    w!(out, "origin:      {}", t(&p.loaded.origin));
    w!(out, "description: {}", t(&info.description));
    w!(
        out,
        "schedule:    {}",
        info.schedule
            .as_deref()
            .map(t)
            .unwrap_or_else(|| "-".into())
    );
    w!(out, "world:       targets {host_world}");
    w!(out, "  imports:   {}", p.loaded.world.imports.join(", "));
    w!(out, "  exports:   {}", p.loaded.world.exports.join(", "));
    let caps = &info.capabilities;
    w!(out, "needs:");
    for k in &caps.kube {
        let verbs: Vec<&str> = k.verbs.iter().map(|v| v.as_str()).collect();
        w!(
            out,
            "  kube        {} {}",
            t(&crate::grants::qualified_kind(&k.group, &k.kind)),
            verbs.join(",")
        );
    }
    if caps.dns {
        w!(out, "  dns");
    }
    for (what, list) in [
        ("http", &caps.http),
        ("etcd", &caps.etcd),
        ("collectors", &caps.collectors),
    ] {
        for item in list {
            w!(out, "  {what:<11} {}", t(item));
        }
    }
    w!(out, "rules:");
    for r in &info.rules {
        w!(
            out,
            "  {:<28} {:<8} {:<12} {}",
            t(&r.id),
            r.default_severity.as_str(),
            t(&r.category),
            t(&r.title)
        );
    }
    Ok(exit::OK)
}

pub async fn list() -> Result<u8> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for p in builtin::all() {
        let when = if p.audit {
            ""
        } else {
            ", acts on the cluster: runs only when named"
        };
        w!(out, "{}  ({} bytes{when})", p.name, p.wasm.len());
    }
    Ok(exit::OK)
}

/// The output formats of `sonde rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RulesFormat {
    /// One rule per row: RULE, PROBE, CATEGORY, SEVERITY, DESCRIPTION.
    Table,
    /// Every field of every rule, remedy included, as JSON.
    Json,
}

#[derive(Serialize)]
struct RuleRow<'a> {
    probe: &'a str,
    id: &'a str,
    title: &'a str,
    category: &'a str,
    severity: &'static str,
    description: &'a str,
    remedy: &'a str,
}

pub async fn rules(json: bool) -> Result<u8> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let runtime = ProbeRuntime::new(RuntimeConfig::default())?;
    let mut infos = Vec::new();
    for p in builtin::all() {
        let prepared = audit::prepare(
            &runtime,
            &ProbeSource::Builtin(p.name),
            None,
            "{}".into(),
            RunLimits::default(),
        )
        .await?;
        infos.push(prepared.info);
    }
    let rows: Vec<RuleRow> = infos
        .iter()
        .flat_map(|info| {
            info.rules.iter().map(move |r| RuleRow {
                probe: &info.name,
                id: &r.id,
                title: &r.title,
                category: &r.category,
                severity: r.default_severity.as_str(),
                description: &r.description,
                remedy: &r.remedy,
            })
        })
        .collect();
    if json {
        w!(out, "{}", serde_json::to_string_pretty(&rows)?);
        return Ok(exit::OK);
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING).set_header([
        "RULE",
        "PROBE",
        "CATEGORY",
        "SEVERITY",
        "DESCRIPTION",
    ]);
    for r in &rows {
        table.add_row([
            terminal_safe(r.id),
            terminal_safe(r.probe),
            terminal_safe(r.category),
            r.severity.to_string(),
            terminal_safe(r.description),
        ]);
    }
    w!(out, "{table}");
    Ok(exit::OK)
}
