//! The container image reference grammar (distribution/reference):
//! `[registry[:port]/]path[:tag][@digest]`. A registry port is not a tag,
//! and a digest pins the image whatever the tag says.

/// The parts of an image reference that the rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// Everything before the tag and digest (`registry:5000/team/app`).
    pub name: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn valid_digest(digest: &str) -> bool {
    match digest.split_once(':') {
        Some((alg, hex)) => {
            !alg.is_empty()
                && alg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// Parses a reference; `None` when it does not follow the grammar (for
/// example an unrendered template), in which case no image rule can judge it.
pub fn parse(image: &str) -> Option<ImageRef<'_>> {
    let image = image.trim();
    if image.is_empty()
        || image
            .chars()
            .any(|c| c.is_whitespace() || c == '{' || c == '}')
    {
        return None;
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) if valid_digest(d) => (r, Some(d)),
        Some(_) => return None,
        None => (image, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let tag = &rest[last_slash + i + 1..];
            if !valid_tag(tag) {
                return None;
            }
            (&rest[..last_slash + i], Some(tag))
        }
        None => (rest, None),
    };
    if name.is_empty() || name.ends_with('/') || name.starts_with('/') {
        return None;
    }
    // Only a registry host (the first of several components) may carry a `:port`.
    let path = name.find('/').map_or(name, |i| &name[i + 1..]);
    if path.contains(':') {
        return None;
    }
    Some(ImageRef { name, tag, digest })
}

impl ImageRef<'_> {
    /// The pull policy Kubernetes defaults to: `Always` for `:latest` or no tag
    /// (unless pinned by digest), `IfNotPresent` otherwise.
    pub fn default_pull_policy(&self) -> &'static str {
        match (self.tag, self.digest) {
            (_, Some(_)) => "IfNotPresent",
            (None, None) | (Some("latest"), None) => "Always",
            _ => "IfNotPresent",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn grammar() {
        let p = parse("nginx").unwrap();
        assert_eq!((p.name, p.tag, p.digest), ("nginx", None, None));
        let p = parse("nginx:1.25").unwrap();
        assert_eq!((p.name, p.tag), ("nginx", Some("1.25")));
        let p = parse("registry.local:5000/team/app").unwrap();
        assert_eq!((p.name, p.tag), ("registry.local:5000/team/app", None));
        let p = parse("registry.local:5000/team/app:v2").unwrap();
        assert_eq!(
            (p.name, p.tag),
            ("registry.local:5000/team/app", Some("v2"))
        );
        let with_digest = format!("ghcr.io/a/b@{DIGEST}");
        let p = parse(&with_digest).unwrap();
        assert_eq!((p.tag, p.digest.is_some()), (None, true));
        let both = format!("a/b:latest@{DIGEST}");
        assert_eq!(parse(&both).unwrap().tag, Some("latest"));
        assert_eq!(parse("localhost:5000/x").unwrap().tag, None);
        for bad in [
            "",
            "{{ .Values.image }}",
            "a:b:c",
            "a@sha256:xyz",
            "a: b",
            "/a",
            "a/:t",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn default_pull_policy_follows_kubernetes() {
        assert_eq!(parse("nginx").unwrap().default_pull_policy(), "Always");
        assert_eq!(
            parse("nginx:latest").unwrap().default_pull_policy(),
            "Always"
        );
        assert_eq!(
            parse("nginx:1.25").unwrap().default_pull_policy(),
            "IfNotPresent"
        );
        let pinned = format!("nginx:latest@{DIGEST}");
        assert_eq!(
            parse(&pinned).unwrap().default_pull_policy(),
            "IfNotPresent"
        );
    }
}
