//! The resource: what produced the telemetry (`service.name`, SDK facts, user attributes).

use skein::propagation::percent_decode;
use skein::{Tag, TagValue};

/// Attributes describing the producing entity, sent once per export request.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    attributes: Vec<Tag>,
}

impl Resource {
    /// A resource for `service_name` with the SDK attributes.
    pub fn new(service_name: impl Into<String>) -> Self {
        let mut resource = Resource { attributes: Vec::new() };
        resource.set("service.name", service_name.into());
        resource.set("telemetry.sdk.name", "skein");
        resource.set("telemetry.sdk.language", "rust");
        resource.set("telemetry.sdk.version", env!("CARGO_PKG_VERSION"));
        resource
    }

    /// The resource the `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` variables describe
    /// (`service.name` defaults to `unknown_service:{executable}`, as the specification says).
    pub fn from_env() -> Self {
        Self::from_vars(
            std::env::var("OTEL_SERVICE_NAME").ok().as_deref(),
            std::env::var("OTEL_RESOURCE_ATTRIBUTES").ok().as_deref(),
        )
    }

    pub(crate) fn from_vars(service_name: Option<&str>, attributes: Option<&str>) -> Self {
        let parsed = attributes.map(parse_resource_attributes).unwrap_or_default();
        let name = service_name
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_owned())
            .or_else(|| parsed.iter().find(|(k, _)| k == "service.name").map(|(_, v)| v.clone()))
            .unwrap_or_else(default_service_name);
        let mut resource = Resource::new(name);
        for (key, value) in parsed {
            if key != "service.name" {
                resource.set(key, value);
            }
        }
        resource
    }

    /// Sets an attribute, replacing one of the same key.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<TagValue>) -> &mut Self {
        let key = key.into();
        let value = value.into();
        match self.attributes.iter_mut().find(|t| t.key == key) {
            Some(tag) => tag.value = value,
            None => self.attributes.push(Tag::new(key, value)),
        }
        self
    }

    /// The same resource with an attribute set.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<TagValue>) -> Self {
        self.set(key, value);
        self
    }

    /// The attributes.
    pub fn attributes(&self) -> &[Tag] {
        &self.attributes
    }

    /// The `service.name` attribute.
    pub fn service_name(&self) -> &str {
        self.attributes
            .iter()
            .find(|t| t.key == "service.name")
            .and_then(|t| t.value.as_str())
            .unwrap_or("")
    }
}

fn default_service_name() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    format!("unknown_service:{exe}")
}

/// `key1=value1,key2=value2`, values percent-encoded; malformed pairs are skipped.
fn parse_resource_attributes(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            if k.is_empty() {
                return None;
            }
            Some((k.to_owned(), percent_decode(v.trim())?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_name_precedence_and_attributes() {
        let r = Resource::from_vars(
            Some("orders"),
            Some("service.name=ignored,deployment.environment=prod%20eu"),
        );
        assert_eq!(r.service_name(), "orders");
        let env = r
            .attributes()
            .iter()
            .find(|t| t.key == "deployment.environment")
            .unwrap();
        assert_eq!(env.value.as_str(), Some("prod eu"));
        let r = Resource::from_vars(None, Some("service.name=from-attrs, bad, =x"));
        assert_eq!(r.service_name(), "from-attrs");
        let r = Resource::from_vars(Some("  "), None);
        assert!(r.service_name().starts_with("unknown_service:"));
        assert!(r.attributes().iter().any(|t| t.key == "telemetry.sdk.name"));
    }
}
