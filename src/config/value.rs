//! Values in the configuration file that may come from elsewhere: `${ENV_VAR}` takes an
//! environment variable, `file:PATH` the contents of a file (trailing newline removed), so
//! secrets stay out of the file. Anything else is taken as written.

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

/// A file value as written; resolved once at start-up. `Debug` never shows what it resolves to.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigValue(String);

impl ConfigValue {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The value as written in the file (`${SLACK_URL}`, `file:/run/secrets/x`, or a literal).
    pub fn as_written(&self) -> &str {
        &self.0
    }

    /// Whether the value is written literally in the file (not a reference).
    pub fn is_literal(&self) -> bool {
        self.reference().is_none()
    }

    fn reference(&self) -> Option<Reference<'_>> {
        let text = self.0.trim();
        if let Some(name) = text
            .strip_prefix("${")
            .and_then(|rest| rest.strip_suffix('}'))
        {
            return Some(Reference::Env(name));
        }
        text.strip_prefix("file:").map(Reference::File)
    }

    /// The value itself, reading the environment variable or file it names. `lookup` reads the
    /// environment (tests pass their own).
    pub fn resolve(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<SecretString, String> {
        match self.reference() {
            None => Ok(SecretString::from(self.0.clone())),
            Some(Reference::Env(name)) => match lookup(name) {
                Some(value) if !value.is_empty() => Ok(SecretString::from(value)),
                Some(_) => Err(format!("the environment variable {name} is empty")),
                None => Err(format!("the environment variable {name} is not set")),
            },
            Some(Reference::File(path)) => std::fs::read_to_string(path)
                .map(|text| SecretString::from(text.trim_end_matches(['\n', '\r']).to_owned()))
                .map_err(|error| format!("cannot read {path}: {error}")),
        }
    }
}

enum Reference<'a> {
    Env(&'a str),
    File(&'a str),
}

impl fmt::Debug for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reference() {
            Some(_) => write!(f, "{:?}", self.0),
            None => f.write_str("\"[redacted]\""),
        }
    }
}

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("from-env".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn resolves_references_and_literals() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let cases = [
            (ConfigValue::new("${SET}"), Ok("from-env".to_owned())),
            (
                ConfigValue::new("${UNSET}"),
                Err("the environment variable UNSET is not set".to_owned()),
            ),
            (
                ConfigValue::new("${EMPTY}"),
                Err("the environment variable EMPTY is empty".to_owned()),
            ),
            (
                ConfigValue::new(format!("file:{}", file.display())),
                Ok("from-file".to_owned()),
            ),
            (ConfigValue::new("plain"), Ok("plain".to_owned())),
        ];
        for (value, expected) in cases {
            let resolved = value
                .resolve(&env)
                .map(|secret| secret.expose_secret().to_owned());
            assert_eq!(resolved, expected, "{value:?}");
        }
        assert!(
            ConfigValue::new("file:/nonexistent/x")
                .resolve(&env)
                .unwrap_err()
                .starts_with("cannot read /nonexistent/x")
        );
    }

    #[test]
    fn debug_shows_references_but_never_literals() {
        assert_eq!(
            format!("{:?}", ConfigValue::new("${SLACK}")),
            "\"${SLACK}\""
        );
        assert_eq!(
            format!(
                "{:?}",
                ConfigValue::new("https://hooks.slack.com/services/T/B/x")
            ),
            "\"[redacted]\""
        );
    }
}
