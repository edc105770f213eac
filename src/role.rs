//! Grafana's basic org roles.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A basic org role, from least to most privileged.
///
/// `None` ("No basic role") exists from Grafana 10.2 on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// No basic role; permissions come from RBAC alone.
    None,
    /// Read-only access.
    Viewer,
    /// Can edit dashboards and most resources.
    Editor,
    /// Org administrator.
    Admin,
}

impl Role {
    /// The role as Grafana spells it on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "None",
            Role::Viewer => "Viewer",
            Role::Editor => "Editor",
            Role::Admin => "Admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that names no role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}, expected one of None, Viewer, Editor, Admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    // Grafana writes "None" on the wire, the UI says "No basic role", and
    // some versions leave the field empty; all three mean the same.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "" | "no basic role" => Ok(Role::None),
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            _ => Err(UnknownRole(s.to_string())),
        }
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The three spellings of "no role" compare equal, and order is privilege.
    #[test]
    fn parses_all_spellings() {
        for s in ["None", "", "No basic role", "none"] {
            assert_eq!(s.parse::<Role>().unwrap(), Role::None, "{s:?}");
        }
        assert_eq!("EDITOR".parse::<Role>().unwrap(), Role::Editor);
        assert!("Owner".parse::<Role>().is_err());
        assert!(Role::Admin > Role::Editor && Role::Viewer > Role::None);
    }
}
