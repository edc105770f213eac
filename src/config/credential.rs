//! Resolving Grafana credentials from their four possible sources.

use std::path::{Path, PathBuf};

use super::convert::Ctx;
use super::error::{ConfigError, Problem};
use super::sections::{Credential, SecretSource};
use crate::secret::Secret;

/// The four keys that can hold one secret, e.g. `password`, `password_env`.
pub struct SecretKeys<'a> {
    /// Key prefix: `password` or `token`.
    pub name: &'static str,
    /// The secret written inline.
    pub inline: Option<&'a str>,
    /// Name of an environment variable.
    pub env: Option<&'a str>,
    /// Path of a file.
    pub file: Option<&'a str>,
    /// Name of a systemd credential.
    pub credential: Option<&'a str>,
}

impl SecretKeys<'_> {
    fn count(&self) -> usize {
        [self.inline, self.env, self.file, self.credential]
            .iter()
            .filter(|v| v.is_some())
            .count()
    }

    fn all_keys(&self) -> String {
        let n = self.name;
        format!("{n}, {n}_env, {n}_file, {n}_credential")
    }
}

/// Reads the secret from exactly one of its sources.
pub fn resolve(ctx: &Ctx<'_>, keys: &SecretKeys<'_>) -> Result<Credential, ConfigError> {
    let section = "grafana.auth";
    if keys.count() != 1 {
        let key = format!("{section}.{}", keys.name);
        return Err(ctx.err(
            key,
            Problem::SecretSources {
                keys: keys.all_keys(),
            },
        ));
    }

    let (suffix, result) = if let Some(value) = keys.inline {
        ("", Ok((value.to_string(), SecretSource::Inline)))
    } else if let Some(var) = keys.env {
        ("_env", from_env(ctx, var))
    } else if let Some(file) = keys.file {
        ("_file", from_file(ctx.resolve_path(file)))
    } else {
        (
            "_credential",
            from_credentials_dir(ctx, keys.credential.unwrap_or("")),
        )
    };
    let key = format!("{section}.{}{suffix}", keys.name);

    let (value, source) = result.map_err(|problem| ctx.err(&key, problem))?;
    if value.is_empty() {
        return Err(ctx.err(&key, Problem::EmptySecret));
    }
    Ok(Credential {
        secret: Secret::new(value),
        source,
    })
}

fn from_env(ctx: &Ctx<'_>, var: &str) -> Result<(String, SecretSource), Problem> {
    let value = ctx.env.get(var).ok_or_else(|| Problem::EnvUnset {
        var: var.to_string(),
    })?;
    let source = SecretSource::Env {
        var: var.to_string(),
    };
    Ok((value.to_string(), source))
}

fn from_file(path: PathBuf) -> Result<(String, SecretSource), Problem> {
    let value = read_secret_file(&path)?;
    Ok((value, SecretSource::File { path }))
}

fn from_credentials_dir(ctx: &Ctx<'_>, name: &str) -> Result<(String, SecretSource), Problem> {
    // A name is a file in the directory, never a path out of it.
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        let rule = "is not a credential name (no slashes)";
        return Err(Problem::Rule {
            value: name.to_string(),
            rule,
        });
    }
    let dir = ctx
        .env
        .get("CREDENTIALS_DIRECTORY")
        .ok_or(Problem::NoCredentialsDirectory)?;
    let path = Path::new(dir).join(name);
    let value = read_secret_file(&path)?;
    let source = SecretSource::SystemdCredential {
        name: name.to_string(),
        path,
    };
    Ok((value, source))
}

/// Reads a secret file, dropping one trailing newline.
fn read_secret_file(path: &Path) -> Result<String, Problem> {
    let mut text = std::fs::read_to_string(path).map_err(|source| Problem::SecretFile {
        path: path.to_path_buf(),
        error: source,
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}
