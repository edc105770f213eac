//! `GET /api/health` and `GET /healthz` (grafana-api.md §3).

use crate::api::Reply;
use crate::profile::{Profile, Settings};

/// Commit reported next to the version.
const COMMIT: &str = "0000000";

/// The pretty-printed health body; key order follows the era.
pub fn health(profile: Profile, version: &str, settings: &Settings) -> Reply {
    let mut fields = vec![("database", "ok")];
    if !settings.hide_version {
        fields.push(("version", version));
        fields.push(("commit", COMMIT));
    }
    // ≤9.x wrote a sorted map; newer versions a struct.
    if !profile.health_struct_order() {
        fields.sort_by_key(|(k, _)| *k);
    }
    let lines: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("  \"{k}\": {}", serde_json::Value::from(*v)))
        .collect();
    let body = format!("{{\n{}\n}}", lines.join(",\n"));
    Reply {
        status: 200,
        body: body.into_bytes(),
        content_type: Some("application/json; charset=UTF-8"),
        headers: vec![],
    }
}

/// The liveness answer.
pub fn healthz() -> Reply {
    Reply::text(200, "Ok")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Old profiles sort keys; hide_version leaves only the database.
    #[test]
    fn health_body_per_era() {
        let settings = Settings::default();
        let old = String::from_utf8(health(Profile::V9_1, "9.3.6", &settings).body).unwrap();
        assert!(old.find("commit").unwrap() < old.find("database").unwrap());
        let new = String::from_utf8(health(Profile::V11_6, "11.6.0", &settings).body).unwrap();
        assert!(new.find("database").unwrap() < new.find("version").unwrap());
        let hidden = Settings {
            hide_version: true,
            ..Settings::default()
        };
        let body = health(Profile::V11_6, "11.6.0", &hidden)
            .body_json()
            .unwrap();
        assert_eq!(body, serde_json::json!({"database": "ok"}));
    }
}
