//! Kubernetes resource quantities (`100m`, `2`, `128Mi`, `1G`, `1e3`) as numbers:
//! CPU in millicores, everything else in base units.

/// The value of a quantity times 1000 (so `100m` is 100 and `2` is 2000).
pub fn milli(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 0.001,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(value * factor * 1000.0)
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
