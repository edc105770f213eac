//! Token formats: `glsa_` tokens and legacy base64 JSON keys.
//!
//! Secrets are stored as SHA-256 hashes only. A `glsa_` token is hashed
//! whole and found by its hash; a legacy key is found by (org, name) and
//! its inner secret `k` is hashed and compared.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A SHA-256 digest of a secret.
pub type SecretHash = [u8; 32];

/// A credential as presented by a client, parsed.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A `glsa_<32>_<crc>` service-account token.
    Glsa(String),
    /// A legacy key: base64 of `{"k":secret,"n":name,"id":org}`.
    Legacy {
        /// The inner secret.
        secret: String,
        /// The key name.
        name: String,
        /// The key's org.
        org: i64,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Glsa(_) => f.write_str("Glsa(***)"),
            Credential::Legacy { name, org, .. } => {
                write!(f, "Legacy {{ name: {name:?}, org: {org}, secret: *** }}")
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct LegacyJson {
    k: String,
    n: String,
    id: i64,
}

impl Credential {
    /// Parses a presented token; None when it is neither format.
    pub fn parse(text: &str) -> Option<Credential> {
        if text.starts_with("glsa_") {
            return is_valid_glsa(text).then(|| Credential::Glsa(text.to_string()));
        }
        let raw = STANDARD.decode(text.trim()).ok()?;
        let json: LegacyJson = serde_json::from_slice(&raw).ok()?;
        Some(Credential::Legacy {
            secret: json.k,
            name: json.n,
            org: json.id,
        })
    }

    /// The hash stored for this credential.
    pub fn hash(&self) -> SecretHash {
        match self {
            Credential::Glsa(token) => hash_secret(token),
            Credential::Legacy { secret, .. } => hash_secret(secret),
        }
    }
}

/// Hashes a secret with SHA-256.
pub fn hash_secret(secret: &str) -> SecretHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// Hex text of a hash, as written in estate exports.
pub fn hash_to_hex(hash: &SecretHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 64 hex digits into a hash.
pub fn hash_from_hex(text: &str) -> Option<SecretHash> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Makes a new `glsa_` token with a valid checksum.
pub fn new_glsa<R: Rng>(rng: &mut R) -> String {
    let random: String = (0..32).map(|_| rng.sample(Alphanumeric) as char).collect();
    let body = format!("glsa_{random}");
    format!("{body}_{}", checksum(&body))
}

/// Makes a new legacy key for (org, name); returns (key, inner secret).
pub fn new_legacy<R: Rng>(rng: &mut R, org: i64, name: &str) -> (String, String) {
    let secret: String = (0..32).map(|_| rng.sample(Alphanumeric) as char).collect();
    (encode_legacy(org, name, &secret), secret)
}

/// Encodes a legacy key as Grafana hands it out.
pub fn encode_legacy(org: i64, name: &str, secret: &str) -> String {
    let json = LegacyJson {
        k: secret.to_string(),
        n: name.to_string(),
        id: org,
    };
    let text = serde_json::to_string(&json).expect("plain struct serialises");
    STANDARD.encode(text)
}

// Grafana's satokengen writes the CRC32 of the prefix and random part
// little-endian, as 8 hex digits.
fn checksum(body: &str) -> String {
    let crc = crc32fast::hash(body.as_bytes());
    crc.to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_valid_glsa(token: &str) -> bool {
    let Some((body, sum)) = token.rsplit_once('_') else {
        return false;
    };
    let random = &body["glsa_".len().min(body.len())..];
    random.len() == 32 && random.chars().all(|c| c.is_ascii_alphanumeric()) && checksum(body) == sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    // A new glsa token has Grafana's shape and passes its own checksum.
    #[test]
    fn glsa_tokens_have_a_valid_checksum() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let token = new_glsa(&mut rng);
        assert_eq!(token.len(), "glsa_".len() + 32 + 1 + 8);
        assert!(matches!(
            Credential::parse(&token),
            Some(Credential::Glsa(_))
        ));
        let mut broken = token.clone();
        broken.replace_range(6..7, if &token[6..7] == "a" { "b" } else { "a" });
        assert_eq!(Credential::parse(&broken), None);
    }

    // A legacy key decodes back to its org, name and secret.
    #[test]
    fn legacy_keys_round_trip() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (key, secret) = new_legacy(&mut rng, 3, "ci deploy");
        assert!(key.starts_with("eyJrIjoi"));
        let parsed = Credential::parse(&key).unwrap();
        let want = Credential::Legacy {
            secret: secret.clone(),
            name: "ci deploy".into(),
            org: 3,
        };
        assert_eq!(parsed, want);
        assert_eq!(parsed.hash(), hash_secret(&secret));
    }

    // Hex encoding of hashes round-trips and rejects bad text.
    #[test]
    fn hash_hex_round_trips() {
        let hash = hash_secret("x");
        assert_eq!(hash_from_hex(&hash_to_hex(&hash)), Some(hash));
        assert_eq!(hash_from_hex("zz"), None);
    }

    // Debug output of a credential never shows its secret.
    #[test]
    fn debug_hides_secrets() {
        let cred = Credential::Legacy {
            secret: "hunter2".into(),
            name: "n".into(),
            org: 1,
        };
        assert!(!format!("{cred:?}").contains("hunter2"));
    }
}
