//! Label and field selectors in the API server's syntax, parsed once and
//! matched against objects held in memory (the snapshot backend and, later,
//! the watch cache).

use serde_json::Value;

/// A parse error, worded like the API server's 400 answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

#[derive(Debug, Clone, PartialEq)]
enum LabelOp {
    Exists,
    NotExists,
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector(Vec<(String, LabelOp)>);

impl LabelSelector {
    /// Parses `app=web,tier in (a,b),!legacy,env!=prod,replicas>2`.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for raw in split_top_level(input) {
            let req = raw.trim();
            if req.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(req)?);
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether `labels` (an object's `metadata.labels`, or null) satisfies every requirement.
    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|(key, op)| {
            let v = get(key);
            match op {
                LabelOp::Exists => v.is_some(),
                LabelOp::NotExists => v.is_none(),
                LabelOp::Eq(want) => v == Some(want.as_str()),
                LabelOp::NotEq(want) => v != Some(want.as_str()),
                LabelOp::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                LabelOp::NotIn(set) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
                LabelOp::Gt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|x| x > *n),
                LabelOp::Lt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|x| x < *n),
            }
        })
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(input: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&input[start..]);
    parts
}

fn valid_key(key: &str) -> bool {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.len() <= 253
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c));
    name_ok && prefix_ok && (!key.contains('/') || !prefix.is_empty())
}

fn valid_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn parse_requirement(req: &str) -> Result<(String, LabelOp), SelectorError> {
    let bad = |why: &str| SelectorError(format!("{req:?}: {why}"));
    let key_checked = |k: &str| -> Result<String, SelectorError> {
        let k = k.trim();
        if valid_key(k) {
            Ok(k.to_string())
        } else {
            Err(bad(&format!("invalid label key {k:?}")))
        }
    };
    let value_checked = |v: &str| -> Result<String, SelectorError> {
        let v = v.trim();
        if valid_value(v) {
            Ok(v.to_string())
        } else {
            Err(bad(&format!("invalid label value {v:?}")))
        }
    };
    if let Some(key) = req.strip_prefix('!') {
        return Ok((key_checked(key)?, LabelOp::NotExists));
    }
    for (sym, ctor) in [("!=", 1), ("==", 0), ("=", 0), (">", 2), ("<", 3)] {
        if let Some((k, v)) = req.split_once(sym) {
            if v.starts_with('=') {
                return Err(bad("found '=', expected a value"));
            }
            let key = key_checked(k)?;
            let op = match ctor {
                0 => LabelOp::Eq(value_checked(v)?),
                1 => LabelOp::NotEq(value_checked(v)?),
                _ => {
                    let n = v.trim().parse::<i64>().map_err(|_| {
                        bad("for 'gt', 'lt' operators, the value must be an integer")
                    })?;
                    if ctor == 2 {
                        LabelOp::Gt(n)
                    } else {
                        LabelOp::Lt(n)
                    }
                }
            };
            return Ok((key, op));
        }
    }
    let words: Vec<&str> = req.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let rest = words[1].trim_start();
        for (kw, negate) in [("notin", true), ("in", false)] {
            if let Some(set) = rest.strip_prefix(kw) {
                let set = set.trim();
                let inner = set
                    .strip_prefix('(')
                    .and_then(|s| s.strip_suffix(')'))
                    .ok_or_else(|| bad("expected a parenthesised value set"))?;
                let values = inner
                    .split(',')
                    .map(value_checked)
                    .collect::<Result<Vec<_>, _>>()?;
                let key = key_checked(words[0])?;
                return Ok(if negate {
                    (key, LabelOp::NotIn(values))
                } else {
                    (key, LabelOp::In(values))
                });
            }
        }
        return Err(bad("expected one of =, ==, !=, in, notin, >, <"));
    }
    Ok((key_checked(req)?, LabelOp::Exists))
}

/// A parsed field selector: `path=value`, `path==value`, `path!=value`, comma-separated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `metadata.name=web,status.phase!=Running`.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for req in input.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (path, eq, value) = if let Some((p, v)) = req.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = req.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = req.split_once('=') {
                (p, true, v)
            } else {
                return Err(SelectorError(format!(
                    "{req:?}: invalid field selector: expected =, == or !="
                )));
            };
            let path = path.trim();
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(SelectorError(format!("{req:?}: invalid field path")));
            }
            reqs.push((path.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether `object` satisfies every requirement. A missing field reads as
    /// the empty string, as the API server's field labels do (`spec.nodeName=`
    /// selects unscheduled pods).
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let got = path
                .split('.')
                .try_fold(object, |v, seg| v.get(seg))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            (got == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels() -> Value {
        json!({"app": "web", "tier": "front", "replicas": "3", "app.kubernetes.io/name": "shop"})
    }

    #[test]
    fn equality_and_sets() {
        let l = labels();
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("tier in (front,back)", true),
            ("tier notin (front)", false),
            ("missing notin (x)", true),
            ("missing in (x)", false),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("replicas>2", true),
            ("replicas<3", false),
            ("app=web,tier in (front, back),!legacy", true),
            ("app.kubernetes.io/name=shop", true),
            ("", true),
        ] {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(Some(&l)), want, "{sel}");
        }
        assert!(!LabelSelector::parse("app").unwrap().matches(None));
        assert!(LabelSelector::parse("app!=web").unwrap().matches(None));
    }

    #[test]
    fn malformed_selectors_are_rejected() {
        // The fixture `error-400-bad-labelselector.json` is the API server's answer to this one.
        for bad in [
            "app===web",
            "app in web",
            "-bad=x",
            "a=b c",
            "n>x",
            "tier in (a b)",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
        assert!(FieldSelector::parse("status.phase").is_err());
        assert!(FieldSelector::parse("a..b=x").is_err());
    }

    #[test]
    fn field_selectors_read_paths() {
        let pod = json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}});
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&pod);
        assert!(m("metadata.name=p"));
        assert!(m("spec.nodeName==node-1,status.phase!=Pending"));
        assert!(!m("metadata.namespace=default"));
        assert!(m("spec.schedulerName="));
        assert!(!m("spec.nodeName="));
    }
}
