//! Judging what came back from a guest: the failure reason behind a trap,
//! the checks and caps on `describe()` and on findings, and the run log
//! assembled from the probe's log calls and its captured stdout/stderr.

use std::collections::HashSet;

use wasmtime::Trap;

use super::limits::{MAX_FIELD_BYTES, MAX_LABELS};
use super::outcome::{FailureReason, LogLevel, LogLine};
use super::state::{LimitTrap, RunContext, RunState};
use crate::bindings::{Finding, ProbeInfo};

/// The failure reason for an error raised while the guest ran.
pub fn classify(error: &wasmtime::Error, state: &RunState) -> FailureReason {
    if let Some(requested) = state.limiter.exceeded {
        return FailureReason::MemoryLimit {
            requested,
            limit: state.limiter.limit,
        };
    }
    if let Some(limit) = error.downcast_ref::<LimitTrap>() {
        return match limit {
            LimitTrap::Output(what) => FailureReason::OutputLimit { what: what.clone() },
            LimitTrap::Deadline => FailureReason::Timeout {
                limit_ms: state.ctx.limits.timeout_ms,
            },
            LimitTrap::Memory => FailureReason::MemoryLimit {
                requested: state.limiter.limit,
                limit: state.limiter.limit,
            },
        };
    }
    let cap = state.ctx.limits.max_log_bytes;
    for (name, pipe) in [("stdout", &state.stdout), ("stderr", &state.stderr)] {
        if pipe.contents().len() >= cap {
            return FailureReason::OutputLimit {
                what: format!("more than {cap} bytes on {name}"),
            };
        }
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => FailureReason::StackOverflow,
        Some(Trap::Interrupt) => FailureReason::Timeout {
            limit_ms: state.ctx.limits.timeout_ms,
        },
        Some(Trap::UnreachableCodeReached) => match panic_message(&state.stderr.contents()) {
            Some(message) => FailureReason::Panic { message },
            None => FailureReason::Trap {
                message: "unreachable code reached (the probe aborted)".into(),
            },
        },
        Some(Trap::MemoryOutOfBounds) => FailureReason::Trap {
            message: format!(
                "{} (in Rust and C probes this is usually the shadow stack overflowing from deep recursion)",
                Trap::MemoryOutOfBounds
            ),
        },
        Some(trap) => FailureReason::Trap {
            message: trap.to_string(),
        },
        None => FailureReason::Trap {
            message: first_line(&format!("{error:#}")),
        },
    }
}

fn first_line(text: &str) -> String {
    cut(text.lines().next().unwrap_or(text), 1024)
}

/// The message of a Rust panic as printed on stderr (`panicked at FILE:LINE:COL:\nMESSAGE`).
fn panic_message(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let at = text.rfind("panicked at ")?;
    let rest = &text[at + "panicked at ".len()..];
    let (location, body) = rest.split_once('\n').unwrap_or((rest, ""));
    let message: Vec<&str> = body
        .lines()
        .take_while(|l| !l.starts_with("note:"))
        .collect();
    let location = location.trim_end_matches(':');
    Some(cut(
        &format!("{} (at {location})", message.join("\n").trim()),
        2048,
    ))
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
pub fn cut(text: &str, max: usize) -> String {
    let mut owned = text.to_string();
    cut_in_place(&mut owned, max);
    owned
}

/// Like `cut`, without copying text that fits.
pub fn cut_in_place(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str("…[truncated]");
}

/// Checks a probe's self-description.
pub fn check_info(info: ProbeInfo) -> Result<ProbeInfo, FailureReason> {
    let bad = |m: String| {
        Err(FailureReason::Load {
            message: format!("describe(): {m}"),
        })
    };
    if info.name.trim().is_empty() || info.name.len() > 128 {
        return bad("the probe name must be 1 to 128 characters".into());
    }
    if !info
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return bad(format!(
            "the probe name {:?} may use only letters, digits, '-', '_' and '.'",
            info.name
        ));
    }
    let mut seen = HashSet::new();
    for rule in &info.rules {
        if rule.id.trim().is_empty() {
            return bad("a rule has an empty id".into());
        }
        if !seen.insert(rule.id.as_str()) {
            return bad(format!("rule id {:?} is declared twice", rule.id));
        }
    }
    Ok(info)
}

fn finding_size(f: &Finding) -> usize {
    let resource = f.resource.as_ref().map_or(0, |r| {
        r.api_version.len()
            + r.kind.len()
            + r.name.len()
            + r.namespace.as_ref().map_or(0, String::len)
            + r.uid.as_ref().map_or(0, String::len)
    });
    f.rule.len()
        + f.message.len()
        + f.remedy.as_ref().map_or(0, String::len)
        + f.labels
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
        + resource
}

/// The rule id a probe declares when its rule ids come from its config.
pub const ANY_RULE: &str = "*";

/// Enforces the findings caps, cuts oversized fields, fills in the rule's
/// remedy, and notes findings for rules the probe did not declare.
pub fn check_findings(
    mut findings: Vec<Finding>,
    info: &ProbeInfo,
    ctx: &mut RunContext,
) -> Result<Vec<Finding>, FailureReason> {
    let limits = &ctx.limits;
    if findings.len() > limits.max_findings {
        return Err(FailureReason::OutputLimit {
            what: format!(
                "{} findings, the limit is {}",
                findings.len(),
                limits.max_findings
            ),
        });
    }
    let total: usize = findings.iter().map(finding_size).sum();
    if total > limits.max_output_bytes {
        return Err(FailureReason::OutputLimit {
            what: format!(
                "{total} bytes of findings, the limit is {}",
                limits.max_output_bytes
            ),
        });
    }
    let rules: std::collections::HashMap<&str, &crate::bindings::RuleInfo> =
        info.rules.iter().map(|r| (r.id.as_str(), r)).collect();
    // A probe whose rules come from its config (Rego, JSON-schema checks)
    // declares the rule `*`: any rule id is then its own, with that remedy.
    let any_rule = rules.get(ANY_RULE).copied();
    let mut undeclared = HashSet::new();
    for f in &mut findings {
        cut_in_place(&mut f.message, MAX_FIELD_BYTES);
        cut_in_place(&mut f.rule, 256);
        f.labels.truncate(MAX_LABELS);
        for (k, v) in &mut f.labels {
            cut_in_place(k, 256);
            cut_in_place(v, 1024);
        }
        match rules.get(f.rule.as_str()).copied().or(any_rule) {
            Some(rule) => {
                if f.remedy.is_none() {
                    f.remedy = Some(rule.remedy.clone());
                }
            }
            None => {
                undeclared.insert(f.rule.clone());
            }
        }
        if let Some(r) = &mut f.remedy {
            cut_in_place(r, MAX_FIELD_BYTES);
        }
    }
    let mut undeclared: Vec<_> = undeclared.into_iter().collect();
    undeclared.sort();
    for rule in undeclared {
        ctx.host_note(
            LogLevel::Warn,
            format!("finding for rule {rule:?}, which describe() does not declare"),
        );
    }
    Ok(findings)
}

/// The run log: the probe's log calls and host notes, then its stdout and stderr lines.
pub fn collect_logs(state: &RunState) -> Vec<LogLine> {
    let mut logs = state.ctx.logs.clone();
    let at_ms = state.ctx.started.elapsed().as_millis() as u64;
    for (source, pipe, level) in [
        ("stdout", &state.stdout, LogLevel::Info),
        ("stderr", &state.stderr, LogLevel::Warn),
    ] {
        let bytes = pipe.contents();
        for line in String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            logs.push(LogLine {
                at_ms,
                level,
                source: source.into(),
                message: cut(line, MAX_FIELD_BYTES),
                fields: Vec::new(),
            });
        }
    }
    logs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_text_is_extracted() {
        let stderr = b"\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nboom: 42\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).unwrap(),
            "boom: 42 (at src/lib.rs:12:9)"
        );
        assert_eq!(panic_message(b"nothing"), None);
    }

    fn rule(id: &str, remedy: &str) -> crate::bindings::RuleInfo {
        crate::bindings::RuleInfo {
            id: id.into(),
            title: id.into(),
            category: "custom".into(),
            default_severity: crate::bindings::Severity::Medium,
            description: String::new(),
            remedy: remedy.into(),
        }
    }

    fn finding(rule: &str) -> Finding {
        Finding {
            rule: rule.into(),
            severity: crate::bindings::Severity::Medium,
            resource: None,
            message: "m".into(),
            remedy: None,
            labels: Vec::new(),
        }
    }

    fn info(rules: Vec<crate::bindings::RuleInfo>) -> ProbeInfo {
        ProbeInfo {
            name: "p".into(),
            version: "1".into(),
            description: String::new(),
            rules,
            capabilities: crate::bindings::Capabilities {
                kube: Vec::new(),
                dns: false,
                http: Vec::new(),
                etcd: Vec::new(),
                collectors: Vec::new(),
            },
            schedule: None,
        }
    }

    fn context() -> RunContext {
        RunContext::new(
            "p".into(),
            "r".into(),
            Default::default(),
            Default::default(),
            Default::default(),
        )
    }

    #[test]
    fn undeclared_rules_are_noted_unless_the_probe_declares_any_rule() {
        let mut ctx = context();
        let out = check_findings(
            vec![finding("Known"), finding("FromConfig")],
            &info(vec![rule("Known", "fix it")]),
            &mut ctx,
        )
        .unwrap();
        assert_eq!(out[0].remedy.as_deref(), Some("fix it"));
        assert_eq!(out[1].remedy, None);
        assert_eq!(ctx.logs.len(), 1);
        assert!(ctx.logs[0].message.contains("\"FromConfig\""));

        let mut ctx = context();
        let out = check_findings(
            vec![finding("Known"), finding("FromConfig")],
            &info(vec![
                rule("Known", "fix it"),
                rule(ANY_RULE, "see the rule file"),
            ]),
            &mut ctx,
        )
        .unwrap();
        assert_eq!(out[0].remedy.as_deref(), Some("fix it"));
        assert_eq!(out[1].remedy.as_deref(), Some("see the rule file"));
        assert!(ctx.logs.is_empty(), "{:?}", ctx.logs);
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("héllo", 2), "h…[truncated]");
        assert_eq!(cut("short", 10), "short");
    }
}
