//! Tests of config loading and validation.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::raw::RawConfig;
use super::*;
use crate::role::Role;
use crate::telemetry::LogFormat;

const EXAMPLE: &str = include_str!("../../config.example.toml");

/// The smallest valid config: a URL and an inline password.
const MINIMAL: &str = r#"
[grafana]
url = "http://127.0.0.1:3000"
[grafana.auth]
kind = "basic"
user = "admin"
password = "admin"
"#;

fn origin() -> &'static Path {
    Path::new("/etc/keyshift/config.toml")
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str_with(text, origin(), &Environment::default())
}

/// MINIMAL with `extra` appended (extra may reopen tables).
fn load_extra(extra: &str) -> Result<Config, ConfigError> {
    load(&format!("{MINIMAL}\n{extra}"))
}

fn error_text(text: &str) -> String {
    load(text)
        .expect_err("config should be rejected")
        .to_string()
}

/// Replaces the `[grafana.auth]` table of MINIMAL.
fn with_auth(auth: &str) -> String {
    format!("[grafana]\nurl = \"http://127.0.0.1:3000\"\n[grafana.auth]\n{auth}\n")
}

// The shipped example loads, with the credential from systemd's directory.
#[test]
fn example_loads() {
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("grafana-password"), "pw-from-systemd\n").unwrap();
    let env = Environment::from_pairs([("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap())]);

    let config = Config::from_toml_str_with(EXAMPLE, origin(), &env).unwrap();

    assert_eq!(config.grafana.url.as_str(), "https://grafana.example.com/");
    let GrafanaAuth::Basic { user, password } = &config.grafana.auth else {
        panic!("example uses basic auth");
    };
    assert_eq!(user, "admin");
    assert_eq!(password.secret.expose(), "pw-from-systemd");
    assert!(matches!(
        password.source,
        SecretSource::SystemdCredential { .. }
    ));
    assert_eq!(config.use_cases[0].role, Some(Role::Editor));
    assert_eq!(config.reconcile.schedule.as_str(), "0 */6 * * *");
    assert_eq!(config.reports.max_age, Duration::from_secs(90 * 86_400));
}

// The example states every default: loading it equals loading nothing.
#[test]
fn example_matches_defaults() {
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("grafana-password"), "pw").unwrap();
    let env = Environment::from_pairs([("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap())]);
    let example = Config::from_toml_str_with(EXAMPLE, origin(), &env).unwrap();
    let minimal = load(MINIMAL).unwrap();

    assert_eq!(example.migration, minimal.migration);
    assert_eq!(example.sink, minimal.sink);
    assert_eq!(example.ledger, minimal.ledger);
    assert_eq!(example.reports, minimal.reports);
    assert_eq!(example.cutover, minimal.cutover);
    assert_eq!(example.reconcile, minimal.reconcile);
    assert_eq!(example.log, minimal.log);
    assert_eq!(example.orgs, minimal.orgs);
    assert_eq!(example.grafana.timeout, minimal.grafana.timeout);
    assert_eq!(example.grafana.concurrency, minimal.grafana.concurrency);
    assert_eq!(example.grafana.max_retries, minimal.grafana.max_retries);
    assert_eq!(example.grafana.retry_budget, minimal.grafana.retry_budget);
}

// Every field of the raw structs is documented in the example, and the
// example documents no key that does not exist.
#[test]
fn example_documents_every_key() {
    let fields = raw_fields();
    let documented = documented_keys(EXAMPLE);

    let missing: Vec<_> = fields.difference(&documented).collect();
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
    let unknown: Vec<_> = documented.difference(&fields).collect();
    assert!(
        unknown.is_empty(),
        "documented keys that do not exist: {unknown:?}"
    );
    assert!(fields.contains("use_case.match") && fields.contains("reconcile.repair.role_changed"));
}

/// Keys written in the example, live or commented out, as `section.key`.
fn documented_keys(text: &str) -> BTreeSet<String> {
    let header = regex::Regex::new(r"^\[\[?([a-z_.]+)\]\]?$").unwrap();
    let assignment = regex::Regex::new(r"^([a-z_]+) = ").unwrap();
    let mut section = String::new();
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(c) = header.captures(line) {
            section = c[1].to_string();
            keys.insert(section.clone());
        } else if let Some(c) = assignment.captures(line) {
            keys.insert(format!("{section}.{}", &c[1]));
        }
    }
    keys
}

/// Every key path of `RawConfig`, found by deserializing from a probe
/// that records the field lists serde asks for.
fn raw_fields() -> BTreeSet<String> {
    let seen = RefCell::new(BTreeSet::new());
    RawConfig::deserialize(Probe {
        path: String::new(),
        seen: &seen,
    })
    .unwrap();
    seen.into_inner()
}

struct Probe<'a> {
    path: String,
    seen: &'a RefCell<BTreeSet<String>>,
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        if !self.path.is_empty() {
            self.seen.borrow_mut().insert(self.path.clone());
        }
        visitor.visit_map(ProbeMap {
            probe: self,
            fields,
            next: 0,
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        v.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        v.visit_seq(ProbeSeq { probe: Some(self) })
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.seen.borrow_mut().insert(self.path);
        v.visit_bool(false)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.seen.borrow_mut().insert(self.path);
        v.visit_i64(1)
    }

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.seen.borrow_mut().insert(self.path);
        v.visit_str("x")
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct tuple tuple_struct map enum identifier
        ignored_any
    }
}

struct ProbeMap<'a> {
    probe: Probe<'a>,
    fields: &'static [&'static str],
    next: usize,
}

impl<'de> MapAccess<'de> for ProbeMap<'_> {
    type Error = de::value::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some(field) = self.fields.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(de::value::StrDeserializer::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let field = self.fields[self.next];
        self.next += 1;
        let path = match self.probe.path.as_str() {
            "" => field.to_string(),
            parent => format!("{parent}.{field}"),
        };
        seed.deserialize(Probe {
            path,
            seen: self.probe.seen,
        })
    }
}

struct ProbeSeq<'a> {
    probe: Option<Probe<'a>>,
}

impl<'de> SeqAccess<'de> for ProbeSeq<'_> {
    type Error = de::value::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        match self.probe.take() {
            Some(probe) => seed.deserialize(probe).map(Some),
            None => Ok(None),
        }
    }
}

// Defaults fill every optional key, with state paths under /var/lib.
#[test]
fn minimal_config_gets_defaults() {
    let config = load(MINIMAL).unwrap();

    assert_eq!(config.grafana.url.as_str(), "http://127.0.0.1:3000/");
    assert_eq!(config.grafana.concurrency, 4);
    assert_eq!(config.grafana.requests_per_second, None);
    assert_eq!(config.orgs.include, OrgFilter::All);
    assert!(config.use_cases.is_empty());
    assert_eq!(config.migration.expired, ExpiredPolicy::Skip);
    let tokens = Path::new("/var/lib/keyshift/tokens").to_path_buf();
    assert_eq!(config.sink, SinkConfig::Directory { path: tokens });
    assert_eq!(
        config.ledger.path,
        Path::new("/var/lib/keyshift/ledger.sqlite")
    );
    assert_eq!(config.cutover.policy, CutoverPolicy::Never);
    assert_eq!(config.daemon.metrics_listen, None);
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.level, LogLevel::Info);
}

// Under systemd, state paths default to $STATE_DIRECTORY (first entry).
#[test]
fn state_directory_from_systemd() {
    let env = Environment::from_pairs([("STATE_DIRECTORY", "/var/lib/ks-a:/var/lib/other")]);
    let config = Config::from_toml_str_with(MINIMAL, origin(), &env).unwrap();

    assert_eq!(config.ledger.path, Path::new("/var/lib/ks-a/ledger.sqlite"));
    assert_eq!(config.reports.dir, Path::new("/var/lib/ks-a/reports"));
}

// Relative paths resolve against the config file's directory.
#[test]
fn relative_paths_resolve_against_config_dir() {
    let config = load_extra(
        "[ledger]\npath = \"state/ledger.sqlite\"\n\
         [sink]\nkind = \"exec\"\ncommand = [\"./bin/store\", \"--x\"]\n",
    )
    .unwrap();

    assert_eq!(
        config.ledger.path,
        Path::new("/etc/keyshift/state/ledger.sqlite")
    );
    let SinkConfig::Exec { command, .. } = &config.sink else {
        panic!("exec sink expected");
    };
    assert_eq!(command, &["/etc/keyshift/./bin/store", "--x"]);
}

// The config path comes from the flag, else the variable, else /etc.
#[test]
fn config_path_precedence() {
    let env = Environment::from_pairs([("KEYSHIFT_CONFIG", "/srv/ks.toml")]);
    let none = Environment::default();
    let flag = Path::new("/tmp/flag.toml");

    assert_eq!(config_path(Some(flag), &env), flag);
    assert_eq!(config_path(None, &env), Path::new("/srv/ks.toml"));
    assert_eq!(
        config_path(None, &none),
        Path::new("/etc/keyshift/config.toml")
    );
}

// A misspelt key is an error that names it.
#[test]
fn unknown_key_is_named() {
    let err = load_extra("[migration]\nkeep_secret = true\n").unwrap_err();

    assert_eq!(err.key(), Some("migration.keep_secret"));
    assert!(
        err.to_string().contains("unknown field `keep_secret`"),
        "{err}"
    );
}

// A word outside the accepted set gets the message the operator reads.
#[test]
fn unknown_value_is_named() {
    let text = format!("{MINIMAL}\n[migration]\nexpired = \"nuke\"\n");
    let err = Config::from_toml_str_with(&text, Path::new("config.toml"), &Environment::default())
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        "config.toml: key migration.expired: unknown value \"nuke\", \
         expected one of skip, delete"
    );
}

// A wrong type names the key and the line.
#[test]
fn wrong_type_is_named() {
    let err = load_extra("[grafana.auth]\n").map(|_| ());
    assert!(err.is_err(), "a repeated table is rejected");

    let text = MINIMAL.replace("[grafana]\n", "[grafana]\nconcurrency = \"four\"\n");
    let err = load(&text).unwrap_err();
    assert_eq!(err.key(), Some("grafana.concurrency"));
    assert!(err.to_string().contains("(line 3)"), "{err}");
}

// Broken TOML is a syntax error with a line number.
#[test]
fn syntax_error_has_line() {
    let err = load("[grafana]\nurl = \n").unwrap_err();
    assert!(
        matches!(err, ConfigError::Syntax { line: 2, .. }),
        "{err:?}"
    );
}

// Required keys are reported missing by path.
#[test]
fn missing_required_keys() {
    assert!(error_text("").contains("key grafana.url: missing"));
    let no_auth = "[grafana]\nurl = \"http://127.0.0.1:3000\"\n";
    assert!(error_text(no_auth).contains("key grafana.auth: missing"));
    let no_match = "[[use_case]]\nname = \"ci\"\n";
    let err = load_extra(no_match).unwrap_err();
    assert_eq!(err.key(), Some("use_case[0].match"));
}

// Bad durations, ranges, urls, regexes and schedules name their key.
#[test]
fn invalid_values_name_their_key() {
    let cases = [
        ("[reports]\nmax_age = \"90 days\"\n", "reports.max_age"),
        ("[reports]\nkeep = 0\n", "reports.keep"),
        ("[cutover]\nunused_for = \"0s\"\n", "cutover.unused_for"),
        (
            "[cutover]\ndistrust_last_used = [\"ten\"]\n",
            "cutover.distrust_last_used[0]",
        ),
        (
            "[reconcile]\nschedule = \"every hour\"\n",
            "reconcile.schedule",
        ),
        (
            "[reconcile.repair]\ntoken_missing = \"fix\"\n",
            "reconcile.repair.token_missing",
        ),
        (
            "[daemon]\nmetrics_listen = \"localhost\"\n",
            "daemon.metrics_listen",
        ),
        ("[log]\nlevel = \"loud\"\n", "log.level"),
        ("[orgs]\nexclude = [\"*\"]\n", "orgs.exclude"),
        ("[orgs]\ninclude = [0]\n", "orgs.include[0]"),
        (
            "[migration]\ntoken_name_prefix = \"a b\"\n",
            "migration.token_name_prefix",
        ),
        (
            "[[use_case]]\nname = \"x\"\nmatch = \"(\"\n",
            "use_case[0].match",
        ),
        (
            "[[use_case]]\nname = \"x\"\nmatch = \"x\"\nrole = \"Owner\"\n",
            "use_case[0].role",
        ),
        (
            "[[use_case]]\nname = \"extsvc-x\"\nmatch = \"x\"\n",
            "use_case[0].name",
        ),
    ];
    for (extra, key) in cases {
        let err = load_extra(extra).expect_err(extra);
        assert_eq!(err.key(), Some(key), "{extra} gave {err}");
    }
    let grafana = [
        ("concurrency = 65", "grafana.concurrency"),
        ("timeout = \"0s\"", "grafana.timeout"),
    ];
    for (line, key) in grafana {
        let text = MINIMAL.replace("[grafana]\n", &format!("[grafana]\n{line}\n"));
        assert_eq!(load(&text).unwrap_err().key(), Some(key), "{line}");
    }
}

// URLs must be http(s) with a host and no credentials in them.
#[test]
fn grafana_url_rules() {
    for url in [
        "ftp://h",
        "https://admin:pw@h",
        "not a url",
        "http://h/?a=b",
    ] {
        let text = MINIMAL.replace("http://127.0.0.1:3000", url);
        let err = load(&text).unwrap_err();
        assert_eq!(err.key(), Some("grafana.url"), "{url}");
        assert!(
            !err.to_string().contains("pw@"),
            "url password echoed: {err}"
        );
    }
    let sub = MINIMAL.replace("http://127.0.0.1:3000", "https://h/grafana");
    let config = load(&sub).unwrap();
    assert_eq!(
        config.grafana.url.join("api/health").unwrap().path(),
        "/grafana/api/health"
    );
}

// The same use-case name twice is an error only where orgs overlap.
#[test]
fn use_case_names_unique_per_org_set() {
    let dup = "[[use_case]]\nname = \"ci\"\nmatch = \"a\"\n\
               [[use_case]]\nname = \"ci\"\nmatch = \"b\"\norgs = [2]\n";
    let err = load_extra(dup).unwrap_err();
    assert_eq!(err.key(), Some("use_case[1].name"));
    assert!(err.to_string().contains("use_case[0]"), "{err}");

    let disjoint = "[[use_case]]\nname = \"ci\"\nmatch = \"a\"\norgs = [1]\n\
                    [[use_case]]\nname = \"ci\"\nmatch = \"b\"\norgs = [\"two\"]\n";
    let config = load_extra(disjoint).unwrap();
    assert_eq!(config.use_cases.len(), 2);
    assert!(config.use_cases[1].orgs.contains(2, "two"));
    assert!(!config.use_cases[1].orgs.contains(1, "one"));
}

// Org selection: include by id or name, exclude wins.
#[test]
fn org_selection() {
    let config = load_extra("[orgs]\ninclude = [1, \"ops\"]\nexclude = [\"ops\"]\n").unwrap();
    assert!(config.orgs.selects(1, "Main Org."));
    assert!(!config.orgs.selects(5, "ops"));
    assert!(!config.orgs.selects(2, "other"));
}

// Keys of the other sink or auth kind are refused, not ignored.
#[test]
fn keys_of_the_other_kind_are_refused() {
    let err = load_extra("[sink]\ncommand = [\"/bin/true\"]\n").unwrap_err();
    assert_eq!(err.key(), Some("sink.command"));
    assert!(
        err.to_string().contains("only valid with kind = \"exec\""),
        "{err}"
    );

    let err = load_extra("[sink]\nkind = \"exec\"\n").unwrap_err();
    assert_eq!(err.key(), Some("sink.command"));

    let err = load(&with_auth(
        "kind = \"token\"\ntoken = \"t\"\nuser = \"admin\"",
    ))
    .unwrap_err();
    assert_eq!(err.key(), Some("grafana.auth.user"));
}

// Roles accept any case and "No basic role".
#[test]
fn use_case_roles() {
    let extra = "[[use_case]]\nname = \"a\"\nmatch = \"a\"\nrole = \"No basic role\"\n\
                 [[use_case]]\nname = \"b\"\nmatch = \"b\"\nrole = \"viewer\"\n";
    let config = load_extra(extra).unwrap();
    assert_eq!(config.use_cases[0].role, Some(Role::None));
    assert_eq!(config.use_cases[1].role, Some(Role::Viewer));
    assert!(config.use_cases[0].pattern.is_match("xay"));
}

// An inline secret loads, is flagged for `config check`, and never shows
// in Debug output.
#[test]
fn inline_secret_is_flagged_and_hidden() {
    let text = with_auth("kind = \"token\"\ntoken = \"glsa_inline_TOPSECRET\"");
    let config = load(&text).unwrap();

    let GrafanaAuth::Token { token } = &config.grafana.auth else {
        panic!("token")
    };
    assert_eq!(token.secret.expose(), "glsa_inline_TOPSECRET");
    assert_eq!(
        config.warnings(),
        vec![ConfigWarning::InlineSecret {
            key: "grafana.auth.token"
        }]
    );
    assert!(!format!("{config:?}").contains("TOPSECRET"));
}

// A secret from an environment variable; unset is an error naming it.
#[test]
fn secret_from_env() {
    let text = with_auth("kind = \"basic\"\nuser = \"admin\"\npassword_env = \"GF_PW\"");
    let env = Environment::from_pairs([("GF_PW", "from-env")]);
    let config = Config::from_toml_str_with(&text, origin(), &env).unwrap();
    let credential = config.grafana.auth.credential();
    assert_eq!(credential.secret.expose(), "from-env");
    assert_eq!(
        credential.source,
        SecretSource::Env {
            var: "GF_PW".into()
        }
    );

    let err = load(&text).unwrap_err();
    assert_eq!(err.key(), Some("grafana.auth.password_env"));
    assert!(err.to_string().contains("GF_PW is not set"), "{err}");
}

// A secret file, relative to the config, loses its trailing newline.
#[test]
fn secret_from_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "glsa_file\r\n").unwrap();
    let text = with_auth("kind = \"token\"\ntoken_file = \"token\"");
    let origin = dir.path().join("config.toml");
    let config = Config::from_toml_str_with(&text, &origin, &Environment::default()).unwrap();
    assert_eq!(
        config.grafana.auth.credential().secret.expose(),
        "glsa_file"
    );

    std::fs::write(dir.path().join("token"), "\n").unwrap();
    let err = Config::from_toml_str_with(&text, &origin, &Environment::default()).unwrap_err();
    assert!(err.to_string().contains("the secret is empty"), "{err}");

    let missing = with_auth("kind = \"token\"\ntoken_file = \"/nonexistent/t\"");
    assert_eq!(
        load(&missing).unwrap_err().key(),
        Some("grafana.auth.token_file")
    );
}

// systemd credentials need $CREDENTIALS_DIRECTORY and a plain name.
#[test]
fn secret_from_credentials_directory() {
    let text = with_auth("kind = \"token\"\ntoken_credential = \"gf\"");
    let err = load(&text).unwrap_err();
    assert!(
        err.to_string().contains("CREDENTIALS_DIRECTORY is not set"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gf"), "glsa_cred").unwrap();
    let env = Environment::from_pairs([("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap())]);
    let config = Config::from_toml_str_with(&text, origin(), &env).unwrap();
    assert_eq!(
        config.grafana.auth.credential().secret.expose(),
        "glsa_cred"
    );

    let escape = with_auth("kind = \"token\"\ntoken_credential = \"../gf\"");
    let err = Config::from_toml_str_with(&escape, origin(), &env).unwrap_err();
    assert_eq!(err.key(), Some("grafana.auth.token_credential"));
}

// Exactly one source per secret: none or two is an error.
#[test]
fn secret_needs_exactly_one_source() {
    let none = with_auth("kind = \"basic\"\nuser = \"admin\"");
    let two = with_auth("kind = \"basic\"\nuser = \"a\"\npassword = \"x\"\npassword_env = \"Y\"");
    for text in [none, two] {
        let err = load(&text).unwrap_err();
        assert_eq!(err.key(), Some("grafana.auth.password"), "{err}");
        assert!(err
            .to_string()
            .contains("give exactly one of password, password_env"));
    }
}

// lastUsedAt distrust matches whole version components.
#[test]
fn distrust_last_used_matches_components() {
    let config = load(MINIMAL).unwrap();
    assert!(config.cutover.distrusts_last_used("10.1.5"));
    assert!(config.cutover.distrusts_last_used("10.2"));
    assert!(!config.cutover.distrusts_last_used("10.10.0"));
    assert!(!config.cutover.distrusts_last_used("11.1.0"));
}

// Debug of the environment never shows values.
#[test]
fn environment_debug_hides_values() {
    let env = Environment::from_pairs([("GF_PW", "hunter2")]);
    let shown = format!("{env:?}");
    assert!(
        shown.contains("GF_PW") && !shown.contains("hunter2"),
        "{shown}"
    );
}

// A badly written secret is reported without its value, whatever the
// mistake: a wrong type, or broken TOML on its line.
#[test]
fn secret_values_are_never_echoed() {
    let values = [
        "12345678",
        "1234.5678",
        "true",
        "1979-05-27T07:32:00Z",
        "[\"s3cr3tA\"]",
        "{ x = \"s3cr3tA\" }",
        "s3cr3tA",
        "12345678abc",
        "\"s3cr3tA\\q\"",
        "\"s3cr3tA",
        "\"\"\"s3cr3tA",
        "\"s3cr3tA\" junk",
    ];
    let auths = [
        "kind = \"basic\"\nuser = \"admin\"\npassword",
        "kind = \"token\"\ntoken",
    ];
    for value in values {
        for auth in auths {
            let err = error_text(&with_auth(&format!("{auth} = {value}")));
            for secret in ["1234", "s3cr3tA", "1979", "true"] {
                assert!(!err.contains(secret), "{value}: {err}");
            }
        }
    }
    let err = error_text(&with_auth("kind = \"token\"\ntoken = 12345678"));
    assert!(
        err.ends_with("key grafana.auth.token: invalid type, expected a string (line 5)"),
        "{err}"
    );
}
