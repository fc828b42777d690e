//! JWT issue and verification with `jsonwebtoken`: one algorithm per server
//! (HS256 with a generated secret by default, RS256/ES256 with PEM keys),
//! issuer, audience, expiry and a unique `jti` on every token. Revocation is
//! the caller's business (see [`super::Auth`]); this module never touches sled,
//! so `baton token` can sign while a server holds the database.

use crate::manifest::{AuthConfig, JwtAlgorithm, Manifest};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The HS256 secret's file name inside the data directory.
pub const SECRET_FILE: &str = "jwt-secret";

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Authenticates requests.
    Access,
    /// Only exchanged for a new access token.
    Refresh,
}

/// The claims Baton writes and requires.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user name.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Unique token id, the key of the revocation list.
    pub jti: String,
    /// Access or refresh.
    pub typ: TokenKind,
    /// The identity the token was issued to: the user's id and token epoch
    /// (the host's `User::token_binding`). A token stops working
    /// when its user is deleted (a new user of the same name has another
    /// id) or changes password (the epoch moves on). Empty in tokens of
    /// records from before ids existed.
    #[serde(default)]
    pub uid: String,
}

/// Why a token was refused. Messages are safe to show to the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Bad signature, wrong algorithm, wrong issuer/audience, or not a JWT.
    #[error("the token is not valid: {0}")]
    Invalid(String),
    /// A refresh token used as an access token, or the reverse.
    #[error("a {0:?} token cannot be used here")]
    WrongKind(TokenKind),
}

/// Signing and verification keys plus the validation rules of a server.
pub struct TokenKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    /// Tokens whose signature and claims were verified already: a client
    /// sends the same token with every request, and the signature check and
    /// JSON parse are the bulk of a token check. Expiry is still checked on
    /// every use; revocation and the user's roles are checked by the caller.
    verified: Mutex<HashMap<String, Claims>>,
}

/// Most verified tokens remembered; the map is emptied when full.
const VERIFIED_MAX: usize = 10_000;

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenKeys {
    /// Loads the keys `[auth]` names; for HS256 reads `<data>/jwt-secret`,
    /// generating it (mode 0600) when `create` is set and it is missing.
    pub fn load(manifest: &Manifest, data_dir: &Path, create: bool) -> anyhow::Result<TokenKeys> {
        Self::load_with(manifest, || load_secret(data_dir, create))
    }

    /// As [`TokenKeys::load`], with the HS256 secret from `secret` (a
    /// store that replicas share) rather than the data directory.
    pub fn load_with(
        manifest: &Manifest,
        secret: impl FnOnce() -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<TokenKeys> {
        let cfg = &manifest.auth;
        let read = |p: &PathBuf| -> anyhow::Result<Vec<u8>> {
            let path = manifest.resolve(p);
            std::fs::read(&path).map_err(|e| {
                anyhow::anyhow!(
                    "{}: reading the JWT key {}: {e}",
                    manifest.source,
                    path.display()
                )
            })
        };
        let bad_key = |what: &str, e: jsonwebtoken::errors::Error| {
            anyhow::anyhow!(
                "{}: `auth.{what}` is not a usable {:?} PEM key: {e}",
                manifest.source,
                cfg.algorithm
            )
        };
        let (algorithm, encoding, decoding) = match cfg.algorithm {
            JwtAlgorithm::HS256 => {
                let secret = secret()?;
                (
                    Algorithm::HS256,
                    EncodingKey::from_secret(&secret),
                    DecodingKey::from_secret(&secret),
                )
            }
            JwtAlgorithm::RS256 => {
                let (private, public) = key_paths(cfg);
                (
                    Algorithm::RS256,
                    EncodingKey::from_rsa_pem(&read(private)?)
                        .map_err(|e| bad_key("private_key", e))?,
                    DecodingKey::from_rsa_pem(&read(public)?)
                        .map_err(|e| bad_key("public_key", e))?,
                )
            }
            JwtAlgorithm::ES256 => {
                let (private, public) = key_paths(cfg);
                (
                    Algorithm::ES256,
                    EncodingKey::from_ec_pem(&read(private)?)
                        .map_err(|e| bad_key("private_key", e))?,
                    DecodingKey::from_ec_pem(&read(public)?)
                        .map_err(|e| bad_key("public_key", e))?,
                )
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&cfg.issuer]);
        validation.set_audience(&[&cfg.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = cfg.clock_skew_secs.into();
        validation.validate_exp = true;
        let keys = TokenKeys {
            algorithm,
            encoding,
            decoding,
            validation,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            verified: Mutex::new(HashMap::new()),
        };
        // A key pair that does not match would fail every request; find out now.
        let (probe, _) = keys.issue("probe", TokenKind::Access, 60)?;
        keys.decode(&probe, TokenKind::Access).map_err(|e| {
            anyhow::anyhow!(
                "{}: `auth.private_key` and `auth.public_key` do not form a pair: {e}",
                manifest.source
            )
        })?;
        Ok(keys)
    }

    /// Signs a token of `kind` for `subject`, valid `ttl_secs`, bound to no
    /// particular identity (see [`TokenKeys::issue_bound`]).
    pub fn issue(
        &self,
        subject: &str,
        kind: TokenKind,
        ttl_secs: u64,
    ) -> anyhow::Result<(String, Claims)> {
        self.issue_bound(subject, "", kind, ttl_secs)
    }

    /// Signs a token of `kind` for `subject` whose identity binding is
    /// `uid` ([`Claims::uid`]), valid `ttl_secs`.
    pub fn issue_bound(
        &self,
        subject: &str,
        uid: &str,
        kind: TokenKind,
        ttl_secs: u64,
    ) -> anyhow::Result<(String, Claims)> {
        let now = now_secs();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.to_string(),
            exp: now + ttl_secs,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            typ: kind,
            uid: uid.to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Verifies signature, algorithm, issuer, audience and expiry, and that
    /// the token is of `kind`.
    pub fn decode(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        if let Some(c) = self.remembered(token)
            && c.typ == kind
        {
            return if c.exp.saturating_add(self.validation.leeway) > now_secs() {
                Ok(c)
            } else {
                Err(TokenError::Expired)
            };
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidIssuer => TokenError::Invalid("wrong issuer".into()),
                ErrorKind::InvalidAudience => TokenError::Invalid("wrong audience".into()),
                ErrorKind::InvalidAlgorithm => {
                    TokenError::Invalid(format!("only {:?} tokens are accepted", self.algorithm))
                }
                ErrorKind::InvalidSignature => TokenError::Invalid("bad signature".into()),
                ErrorKind::MissingRequiredClaim(c) => {
                    TokenError::Invalid(format!("the `{c}` claim is missing"))
                }
                _ => TokenError::Invalid("not a well-formed token".into()),
            })?
            .claims;
        if claims.typ != kind {
            return Err(TokenError::WrongKind(claims.typ));
        }
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        verified.insert(token.to_string(), claims.clone());
        Ok(claims)
    }

    /// The claims of `token` if it was verified before.
    fn remembered(&self, token: &str) -> Option<Claims> {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }
}

fn key_paths(cfg: &AuthConfig) -> (&PathBuf, &PathBuf) {
    let missing = "checked by AuthConfig::check";
    (
        cfg.private_key.as_ref().expect(missing),
        cfg.public_key.as_ref().expect(missing),
    )
}

/// Reads the HS256 secret, generating 64 random bytes on first use.
fn load_secret(data_dir: &Path, create: bool) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(SECRET_FILE);
    let b64 = base64::engine::general_purpose::STANDARD;
    match std::fs::read_to_string(&path) {
        Ok(text) => b64.decode(text.trim()).map_err(|e| {
            anyhow::anyhow!("{} is not base64 ({e}); delete it to generate a new secret (every token is then invalid)", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let secret: [u8; 64] = rand::random();
            crate::write_private_file(&path, b64.encode(secret).as_bytes())?;
            tracing::info!(path = %path.display(), "generated the JWT signing secret");
            Ok(secret.to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "{} does not exist: start the server once (`baton serve`) to generate it, or check `--data`",
            path.display()
        ),
        Err(e) => anyhow::bail!("reading {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path, extra: &str) -> TokenKeys {
        let m = Manifest::parse(
            &format!(
                "[[listener]]\naddress = \"127.0.0.1:0\"\n[auth]\nclock_skew_secs = 0\n{extra}"
            ),
            "test.toml",
            dir,
        )
        .unwrap();
        TokenKeys::load(&m, dir, true).unwrap()
    }

    #[test]
    fn tokens_round_trip_and_kinds_do_not_mix() {
        let dir = tempfile::tempdir().unwrap();
        let k = keys(dir.path(), "");
        let (access, claims) = k.issue("ann", TokenKind::Access, 60).unwrap();
        assert_eq!(k.decode(&access, TokenKind::Access).unwrap(), claims);
        assert_eq!(
            k.decode(&access, TokenKind::Refresh),
            Err(TokenError::WrongKind(TokenKind::Access))
        );
        let (_, other) = k.issue("ann", TokenKind::Access, 60).unwrap();
        assert_ne!(claims.jti, other.jti, "every token has its own jti");
    }

    #[test]
    fn the_secret_persists_and_a_new_secret_invalidates() {
        let dir = tempfile::tempdir().unwrap();
        let (token, _) = keys(dir.path(), "")
            .issue("ann", TokenKind::Access, 60)
            .unwrap();
        assert!(
            keys(dir.path(), "")
                .decode(&token, TokenKind::Access)
                .is_ok()
        );
        let other = tempfile::tempdir().unwrap();
        assert!(matches!(
            keys(other.path(), "").decode(&token, TokenKind::Access),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn expired_and_foreign_issuer_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = keys(dir.path(), "");
        let (token, _) = k.issue("ann", TokenKind::Access, 0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(
            k.decode(&token, TokenKind::Access),
            Err(TokenError::Expired)
        );
        let other = keys(dir.path(), "issuer = \"elsewhere\"\n");
        let (token, _) = other.issue("ann", TokenKind::Access, 60).unwrap();
        assert_eq!(
            k.decode(&token, TokenKind::Access),
            Err(TokenError::Invalid("wrong issuer".into()))
        );
    }

    #[test]
    fn a_missing_secret_is_not_created_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let m =
            Manifest::parse("[[listener]]\naddress = \"127.0.0.1:0\"\n", "t", dir.path()).unwrap();
        let err = TokenKeys::load(&m, dir.path(), false).err().unwrap();
        assert!(err.to_string().contains("baton serve"), "{err}");
        assert!(!dir.path().join(SECRET_FILE).exists());
    }

    #[test]
    fn a_remembered_token_still_expires_and_keeps_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        let k = keys(dir.path(), "");
        let (token, _) = k.issue("ann", TokenKind::Refresh, 3600).unwrap();
        assert_eq!(k.decode(&token, TokenKind::Refresh).unwrap().sub, "ann");
        // Remembered now; still not an access token.
        assert_eq!(
            k.decode(&token, TokenKind::Access),
            Err(TokenError::WrongKind(TokenKind::Refresh))
        );
        // A remembered token past its expiry is refused without re-verifying.
        k.verified.lock().unwrap().get_mut(&token).unwrap().exp = now_secs() - 1;
        assert_eq!(
            k.decode(&token, TokenKind::Refresh),
            Err(TokenError::Expired)
        );
        // Garbage is never remembered.
        assert!(k.decode("not.a.token", TokenKind::Access).is_err());
        assert!(k.remembered("not.a.token").is_none());
    }
}
