//! Polaris's schema keywords for Kubernetes quantities, `resourceMinimum`
//! and `resourceMaximum` (`memory: {resourceMinimum: 100M, resourceMaximum:
//! 6G}`): the value must be a quantity within the bound. Without them a
//! Polaris check using them would pass whatever the value.

use jsonschema::{Keyword, ValidationError, paths::Location};
use serde_json::{Map, Value};
use sonde_sdk::quantity::parse_quantity;

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
