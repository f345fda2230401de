//! User flows (KubeProber's "log in as a user, do something, check the
//! business's main path"): steps of HTTP requests in order, each checked as
//! an endpoint is (status, text, latency), where a step may keep values of
//! its answer (`capture`: a JSON pointer into the body, or `header:NAME`)
//! and later steps use them as `${name}` in their URL, headers and body (a
//! session token, an id just created). The first step that fails ends the
//! flow with one finding naming it; a slow step is a finding and the flow
//! goes on.
//!
//! Captured values are the service's answers (tokens among them): findings
//! name each step by its name, method and URL as configured, never with
//! the values put into it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sonde_sdk::http::{self, Response};
use sonde_sdk::{Finding, ProbeError, log};

use crate::endpoints::{self, Check, Verdict};
use crate::{FLOW_FAILURE, FLOW_SLOW};

/// One flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    pub name: String,
    pub steps: Vec<Step>,
}

/// One request of a flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Shown in findings; default: the step's number.
    #[serde(default)]
    pub name: Option<String>,
    pub url: String,
    #[serde(default = "endpoints::get")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    /// Statuses that pass; empty: any 2xx or 3xx.
    #[serde(default)]
    pub expect_status: Vec<u16>,
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Values to keep, by name: `/json/pointer` into the answer's JSON
    /// body, or `header:NAME`.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
    #[serde(default = "endpoints::default_latency")]
    pub max_latency_ms: u64,
    #[serde(default = "endpoints::default_timeout")]
    pub timeout_ms: u32,
    #[serde(default)]
    pub insecure: bool,
}

/// `text` with every `${name}` replaced by its captured value; an unknown
/// name is an error naming it.
pub fn fill(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("an unclosed ${{ in {text:?}"));
        };
        let name = &after[..end];
        let value = vars
            .get(name)
            .ok_or_else(|| format!("${{{name}}} is not captured by an earlier step"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value `how` names in `response`: a JSON pointer into its body, or
/// `header:NAME`.
pub fn capture(response: &Response, how: &str) -> Result<String, String> {
    if let Some(name) = how.strip_prefix("header:") {
        return response
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("no {name} header in the answer"));
    }
    let body: serde_json::Value = serde_json::from_slice(&response.body)
        .map_err(|e| format!("the answer is not JSON ({e}), so {how} cannot be read"))?;
    match body.pointer(how) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        Some(serde_json::Value::Bool(b)) => Ok(b.to_string()),
        Some(_) => Err(format!(
            "{how} in the answer is not a text, number or boolean"
        )),
        None => Err(format!("no {how} in the answer's JSON")),
    }
}

impl Step {
    fn shown(&self, i: usize) -> String {
        match &self.name {
            Some(n) => format!("step {} ({n})", i + 1),
            None => format!("step {}", i + 1),
        }
    }

    /// The step as an endpoint check, its `${...}` filled in.
    fn check(&self, vars: &BTreeMap<String, String>) -> Result<Check, String> {
        let mut headers = BTreeMap::new();
        for (k, v) in &self.headers {
            headers.insert(k.clone(), fill(v, vars)?);
        }
        Ok(Check {
            name: self.name.clone(),
            url: fill(&self.url, vars)?,
            method: self.method.clone(),
            headers,
            body: self.body.as_deref().map(|b| fill(b, vars)).transpose()?,
            expect_status: self.expect_status.clone(),
            body_contains: self.body_contains.clone(),
            max_latency_ms: self.max_latency_ms,
            timeout_ms: self.timeout_ms,
            insecure: self.insecure,
            cert_expiry_days: 0,
        })
    }
}

/// An answer to a step (or why there was none) and how long it took.
pub type Answer = (Result<Response, ProbeError>, Duration);

/// Runs `flow`, with `send` making each request (the host's HTTP in the
/// probe; a stand-in in the unit tests). `Err` is a line for the log: the
/// flow stopped on a grant or config problem, not the cluster's.
pub fn run_with(
    flow: &Flow,
    send: &mut dyn FnMut(&Check) -> Answer,
    out: &mut Vec<Finding>,
) -> Result<(), String> {
    let mut vars = BTreeMap::new();
    let finding = |rule: &sonde_sdk::Rule, step: &Step, message: String| -> Finding {
        rule.cluster_finding(format!("flow {}: {message}", flow.name))
            .label("flow", flow.name.clone())
            .label("url", step.url.clone())
            .into()
    };
    for (i, step) in flow.steps.iter().enumerate() {
        let what = format!("{}: {} {}", step.shown(i), step.method, step.url);
        let check = match step.check(&vars) {
            Ok(c) => c,
            Err(why) => return Err(format!("flow {} not run past {what}: {why}", flow.name)),
        };
        let (answer, took) = send(&check);
        match endpoints::verdict(&check, &what, answer.as_ref().map(|r| (r, took))) {
            Verdict::Pass => {}
            Verdict::Slow(m) => out.push(finding(&FLOW_SLOW, step, m)),
            Verdict::Failed(m) => {
                out.push(finding(&FLOW_FAILURE, step, m));
                return Ok(());
            }
            Verdict::Skipped(why) => {
                return Err(format!("flow {} skipped at {what}: {why}", flow.name));
            }
        }
        let Ok(response) = &answer else {
            return Ok(());
        };
        for (name, how) in &step.capture {
            match capture(response, how) {
                Ok(v) => {
                    vars.insert(name.clone(), v);
                }
                Err(why) => {
                    out.push(finding(
                        &FLOW_FAILURE,
                        step,
                        format!("{what} answered {}, but {why}", response.status),
                    ));
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Runs `flow` through the host's HTTP.
pub fn run(flow: &Flow, out: &mut Vec<Finding>) {
    let mut send = |check: &Check| {
        let started = Instant::now();
        let answer = http::send(&endpoints::request(check));
        (answer, started.elapsed())
    };
    let before = out.len();
    match run_with(flow, &mut send, out) {
        Ok(()) if out.len() == before => log::debug(&format!("flow {} passed", flow.name)),
        Ok(()) => {}
        Err(line) => log::error(&line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            body_truncated: false,
            peer_certificate: None,
        }
    }

    /// The log-in step's answer: a token, a user id, a trace header.
    fn logged_in() -> Response {
        response(
            200,
            &[("x-trace", "abc")],
            r#"{"token": "t-42", "user": {"id": 7}}"#,
        )
    }

    fn flow() -> Flow {
        serde_json::from_value(serde_json::json!({
            "name": "checkout",
            "steps": [
                {"name": "log in", "method": "POST", "url": "http://shop.test/login",
                 "body": "{\"user\": \"ops\"}", "expect_status": [200],
                 "capture": {"token": "/token", "user": "/user/id", "trace": "header:X-Trace"}},
                {"name": "orders", "url": "http://shop.test/users/${user}/orders",
                 "headers": {"Authorization": "Bearer ${token}"}, "body_contains": "orders"},
            ]
        }))
        .unwrap()
    }

    /// Runs the flow against `answers` in order; returns the findings and the checks sent.
    fn run_against(
        flow: &Flow,
        answers: Vec<(Result<Response, ProbeError>, u64)>,
    ) -> (Vec<String>, Vec<Check>) {
        let mut answers = answers.into_iter();
        let mut sent = Vec::new();
        let mut out = Vec::new();
        let mut send = |c: &Check| {
            sent.push(c.clone());
            let (a, ms) = answers.next().expect("no more answers");
            (a, Duration::from_millis(ms))
        };
        let logged = run_with(flow, &mut send, &mut out);
        let mut found: Vec<String> = out
            .iter()
            .map(|f| format!("{}: {}", f.rule, f.message))
            .collect();
        if let Err(line) = logged {
            found.push(format!("log: {line}"));
        }
        (found, sent)
    }

    #[test]
    fn captured_values_go_into_later_steps_and_a_pass_is_silent() {
        let login = logged_in();
        let (found, sent) = run_against(
            &flow(),
            vec![(Ok(login), 5), (Ok(response(200, &[], "orders: 3")), 5)],
        );
        assert_eq!(found, Vec::<String>::new());
        assert_eq!(sent[0].body.as_deref(), Some("{\"user\": \"ops\"}"));
        assert_eq!(sent[1].url, "http://shop.test/users/7/orders");
        assert_eq!(sent[1].headers["Authorization"], "Bearer t-42");
    }

    #[test]
    fn the_first_failing_step_ends_the_flow_and_is_named_without_its_values() {
        let (found, sent) = run_against(&flow(), vec![(Ok(response(401, &[], "no")), 5)]);
        assert_eq!(
            found,
            [
                "UserFlowFailed: flow checkout: step 1 (log in): POST http://shop.test/login answered 401 (expected [200])"
            ]
        );
        assert_eq!(sent.len(), 1);
        let login = logged_in();
        let (found, _) = run_against(
            &flow(),
            vec![(Ok(login), 5), (Ok(response(403, &[], "")), 5)],
        );
        assert_eq!(
            found,
            [
                "UserFlowFailed: flow checkout: step 2 (orders): GET http://shop.test/users/${user}/orders answered 403 (expected 2xx or 3xx)"
            ]
        );
        assert!(!found[0].contains("t-42"));
        // A capture that is not there.
        let (found, sent) = run_against(
            &flow(),
            vec![(Ok(response(200, &[], r#"{"user": {"id": 7}}"#)), 5)],
        );
        assert_eq!(sent.len(), 1);
        assert!(
            found[0].ends_with("answered 200, but no /token in the answer's JSON"),
            "{found:?}"
        );
        // No answer at all.
        let (found, _) = run_against(
            &flow(),
            vec![(
                Err(ProbeError::Timeout("no answer within 10000 ms".into())),
                10_000,
            )],
        );
        assert_eq!(
            found,
            [
                "UserFlowFailed: flow checkout: step 1 (log in): POST http://shop.test/login failed: timeout: no answer within 10000 ms"
            ]
        );
    }

    #[test]
    fn a_slow_step_is_a_finding_and_the_flow_goes_on() {
        let login = logged_in();
        let (found, sent) = run_against(
            &flow(),
            vec![(Ok(login), 2500), (Ok(response(200, &[], "orders")), 5)],
        );
        assert_eq!(sent.len(), 2);
        assert_eq!(
            found,
            [
                "UserFlowSlow: flow checkout: step 1 (log in): POST http://shop.test/login answered in 2500 ms (threshold 2000 ms)"
            ]
        );
    }

    #[test]
    fn an_unknown_variable_stops_the_flow_as_a_config_problem() {
        let mut f = flow();
        f.steps[1].url = "http://shop.test/${nope}".into();
        let login = logged_in();
        let (found, sent) = run_against(&f, vec![(Ok(login), 5)]);
        assert_eq!(
            found,
            [
                "log: flow checkout not run past step 2 (orders): GET http://shop.test/${nope}: ${nope} is not captured by an earlier step"
            ]
        );
        assert_eq!(sent.len(), 1);
        assert_eq!(
            fill("a ${x} b", &BTreeMap::new()).unwrap_err(),
            "${x} is not captured by an earlier step"
        );
        assert!(fill("a ${x", &BTreeMap::new()).is_err());
    }
}
