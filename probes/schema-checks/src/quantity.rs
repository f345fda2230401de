//! Polaris's schema keywords for Kubernetes quantities, `resourceMinimum`
//! and `resourceMaximum` (`memory: {resourceMinimum: 100M, resourceMaximum:
//! 6G}`): the value must be a quantity within the bound. Without them a
//! Polaris check using them would pass whatever the value.

use jsonschema::{Keyword, ValidationError, paths::Location};
use serde_json::{Map, Value};

/// A Kubernetes quantity (`500m`, `1.5Gi`, `2e3`) as a number of base units.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let number_end = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '+' || c == '-'))))
        .map_or(text.len(), |(i, _)| i);
    let (number, suffix) = text.split_at(number_end);
    if !number.chars().any(|c| c.is_ascii_digit()) || number.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let digits = exponent
                .strip_prefix('e')
                .or_else(|| exponent.strip_prefix('E'))?;
            let unsigned = digits.trim_start_matches(['+', '-']);
            if unsigned.is_empty() || !unsigned.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            10f64.powi(digits.parse().ok()?)
        }
    };
    Some(value * scale)
}

/// A quantity as a manifest holds it: a string, or a plain number in YAML.
fn quantity_of(instance: &Value) -> Option<f64> {
    match instance {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

struct Bound {
    limit: f64,
    shown: String,
    minimum: bool,
}

impl<'i> Keyword<'i> for Bound {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.is_valid(instance) {
            return Ok(());
        }
        let relation = if self.minimum { "at least" } else { "at most" };
        Err(ValidationError::custom(format!(
            "{instance} is not a quantity {relation} {}",
            self.shown
        )))
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        quantity_of(instance).is_some_and(|q| {
            if self.minimum {
                q >= self.limit
            } else {
                q <= self.limit
            }
        })
    }
}

/// A compiled custom keyword.
type BoxedKeyword = Box<dyn for<'i> Keyword<'i>>;

fn bound(value: &Value, minimum: bool) -> Result<BoxedKeyword, ValidationError<'static>> {
    let name = if minimum {
        "resourceMinimum"
    } else {
        "resourceMaximum"
    };
    let limit = quantity_of(value).ok_or_else(|| {
        ValidationError::schema(format!(
            "{name} must be a Kubernetes quantity (e.g. 100m, 6Gi), got {value}"
        ))
    })?;
    Ok(Box::new(Bound {
        limit,
        shown: match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        minimum,
    }))
}

fn resource_minimum<'a>(
    _: &'a Map<String, Value>,
    value: &'a Value,
    _: Location,
) -> Result<BoxedKeyword, ValidationError<'a>> {
    bound(value, true)
}

fn resource_maximum<'a>(
    _: &'a Map<String, Value>,
    value: &'a Value,
    _: Location,
) -> Result<BoxedKeyword, ValidationError<'a>> {
    bound(value, false)
}

/// Validation options with Polaris's quantity keywords.
pub fn options() -> jsonschema::ValidationOptions<'static> {
    jsonschema::options()
        .with_keyword("resourceMinimum", resource_minimum)
        .with_keyword("resourceMaximum", resource_maximum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        for (text, value) in [
            ("100m", 0.1),
            ("2", 2.0),
            ("1.5", 1.5),
            ("128Mi", 128.0 * 1024.0 * 1024.0),
            ("1Gi", 1024f64.powi(3)),
            ("6G", 6e9),
            ("1e3", 1000.0),
            ("5E-1", 0.5),
            ("+4k", 4000.0),
        ] {
            assert_eq!(parse_quantity(text), Some(value), "{text}");
        }
        for bad in ["", "Mi", "1.2.3", "12 cores", "1x", "1e", "--1"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn polaris_resource_range_keywords() {
        let schema = json!({"properties": {"memory": {"type": "string", "resourceMinimum": "100M", "resourceMaximum": "6G"}}});
        let v = options().build(&schema).unwrap();
        assert!(v.is_valid(&json!({"memory": "512Mi"})));
        assert!(!v.is_valid(&json!({"memory": "64Mi"})));
        assert!(!v.is_valid(&json!({"memory": "8Gi"})));
        assert!(!v.is_valid(&json!({"memory": "lots"})));
        // Absent properties are not checked, as in JSON schema.
        assert!(v.is_valid(&json!({})));
        let bad = json!({"resourceMinimum": "a lot"});
        let e = options().build(&bad).unwrap_err().to_string();
        assert!(
            e.contains("resourceMinimum must be a Kubernetes quantity"),
            "{e}"
        );
    }
}
