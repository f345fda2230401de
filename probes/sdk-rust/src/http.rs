//! One HTTP(S) request through the host's `http` interface (`sonde:probe/http`),
//! with the peer certificate of an https server. The target's `host:port`
//! must be inside the probe's grant (else `denied`).

use crate::ProbeError;
use crate::bindings::sonde::probe::http as host;

pub use host::{PeerCertificate, Request, Response};

/// A `GET` of `url` with no body. `insecure_skip_verify` accepts any server
/// certificate (to inspect self-signed endpoints).
pub fn get(
    url: &str,
    timeout_ms: Option<u32>,
    insecure_skip_verify: bool,
) -> Result<Response, ProbeError> {
    send(&Request {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: None,
        timeout_ms,
        insecure_skip_verify,
    })
}

/// Sends one request.
pub fn send(request: &Request) -> Result<Response, ProbeError> {
    host::send(request)
}
