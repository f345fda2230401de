//! Kubernetes resource quantities (`100m`, `2`, `128Mi`, `1G`, `1e3`) as numbers:
//! CPU in millicores, everything else in base units.

/// The value of a quantity times 1000 (so `100m` is 100 and `2` is 2000).
pub fn milli(q: &str) -> Option<f64> {
    sonde_sdk::quantity::parse_quantity(q).map(|v| v * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::milli;

    #[test]
    fn quantities() {
        assert_eq!(milli("100m"), Some(100.0));
        assert_eq!(milli("2"), Some(2000.0));
        assert_eq!(milli("1Ki"), Some(1_024_000.0));
        assert_eq!(milli("1e3"), Some(1_000_000.0));
        assert_eq!(milli("1.5G"), Some(1.5e12));
        assert_eq!(milli("x"), None);
        assert_eq!(milli("1Zi"), None);
    }
}
