//! The recorded responses of a real kube-apiserver 1.28 (`responses/INDEX.tsv`
//! and the body files), indexed by what changes the answer: method, path,
//! decoded query parameters, user, impersonation and the kind of `Accept`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// What a client asked for, normalised for lookup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestKey {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub user: String,
    pub accept: AcceptKind,
    pub impersonate: Option<String>,
}

/// The `Accept` variants the recordings distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AcceptKind {
    Plain,
    AggregatedDiscovery,
    PartialMetadata,
}

impl AcceptKind {
    pub fn of(accept: &str) -> Self {
        if accept.contains("as=APIGroupDiscoveryList") {
            AcceptKind::AggregatedDiscovery
        } else if accept.contains("as=PartialObjectMetadataList") {
            AcceptKind::PartialMetadata
        } else {
            AcceptKind::Plain
        }
    }
}

/// One recorded answer.
#[derive(Debug, Clone)]
pub struct Recording {
    pub file: String,
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Decodes `%XX` escapes and `+` (as Go's URL query parsing does).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a raw query string into decoded pairs.
pub fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Every recording of the fixture folder.
pub fn load(responses: &Path) -> HashMap<RequestKey, Recording> {
    let index = std::fs::read_to_string(responses.join("INDEX.tsv"))
        .unwrap_or_else(|e| panic!("cannot read {}/INDEX.tsv: {e}", responses.display()));
    let mut map = HashMap::new();
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 8 {
            continue;
        }
        let (file, method, target, user, accept, extra, status, content_type) = (
            cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7],
        );
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let impersonate = extra.strip_prefix("Impersonate-User: ").map(str::to_string);
        let key = RequestKey {
            method: method.to_string(),
            path: path.to_string(),
            query: parse_query(query),
            user: user.to_string(),
            accept: AcceptKind::of(accept),
            impersonate,
        };
        let body = std::fs::read(responses.join(file))
            .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
        // The first recording of a request is the normal state; later ones (the 410 after
        // compaction) need the server put in that state.
        map.entry(key).or_insert(Recording {
            file: file.to_string(),
            status: status.parse().unwrap_or(200),
            content_type: content_type.to_string(),
            body,
        });
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(
            percent_decode("app%20in%20(web%2Ccheckout)"),
            "app in (web,checkout)"
        );
        assert_eq!(percent_decode("a+b%3D"), "a b=");
        let q = parse_query("labelSelector=app%3Dweb&limit=2");
        assert_eq!(q["labelSelector"], "app=web");
        assert_eq!(q["limit"], "2");
    }
}
