//! Errors shown to people: an error with its causes on one line, as the CLI,
//! the logs and the probes' capabilities show them.

/// `e` and each of its sources, joined by `: `; a cause whose text the
/// message already holds is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_on_one_line() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(super::chain(&e), "outer: connection refused");
    }
}
