//! `sonde:probe/http`: outbound HTTP(S) for active checks. The grant check
//! is in place; the client itself lands with the active-probing work, so a
//! granted call answers `unavailable` until then.

use crate::bindings::ProbeError;
use crate::bindings::sonde::probe::http::{Host, Request, Response};
use crate::runtime::RunState;

/// `host:port` of a URL, with the scheme's default port.
pub fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority
        .rsplit_once('@')
        .map(|(_, a)| a)
        .unwrap_or(authority);
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port {
        return Some(authority.to_ascii_lowercase());
    }
    let port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    Some(format!("{}:{port}", authority.to_ascii_lowercase()))
}

impl Host for RunState {
    async fn send(&mut self, req: Request) -> wasmtime::Result<Result<Response, ProbeError>> {
        let Some(target) = host_port(&req.url) else {
            return Ok(Err(ProbeError::InvalidInput(format!(
                "not an http(s) URL: {:?}",
                req.url
            ))));
        };
        if !self.ctx.grants.allows_http(&target) {
            let detail = format!("{} {}", req.method, target);
            return Ok(Err(ProbeError::Denied(self.ctx.deny("http", detail))));
        }
        Ok(Err(ProbeError::Unavailable(
            "the http capability is not available in this version of the host".into(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_port_of_urls() {
        assert_eq!(
            host_port("https://Example.com/x").as_deref(),
            Some("example.com:443")
        );
        assert_eq!(host_port("http://a:8080?q").as_deref(), Some("a:8080"));
        assert_eq!(host_port("http://u:p@h/").as_deref(), Some("h:80"));
        assert_eq!(host_port("http://[::1]/").as_deref(), Some("[::1]:80"));
        assert_eq!(host_port("http://[::1]:9/").as_deref(), Some("[::1]:9"));
        assert_eq!(host_port("ftp://h/"), None);
        assert_eq!(host_port("nonsense"), None);
    }
}
