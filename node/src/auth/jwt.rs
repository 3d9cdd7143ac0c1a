//! etcd's JWT tokens (`--auth-token jwt,pub-key=...,priv-key=...,
//! sign-method=...,ttl=...`): signed claims `username`, `revision` and
//! `exp`, verifiable by any member holding the public key. A token names
//! the auth revision it was made at: once the store changes, requests with
//! it fail with etcd's old-revision error until the client logs in again.

use ferrocd_proto::errors::{self, EtcdError};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct JwtTokens {
    algorithm: Algorithm,
    /// None: verify only (a public key without the private one).
    signing: Option<EncodingKey>,
    verifying: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for JwtTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtTokens")
            .field("algorithm", &self.algorithm)
            .field("verify_only", &self.signing.is_none())
            .field("ttl", &self.ttl)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

impl JwtTokens {
    /// A signer and verifier with etcd's options (`sign-method`, `pub-key`,
    /// `priv-key` files, `ttl`); the error is one line for the operator.
    pub fn new(
        method: &str,
        pub_key: Option<&Path>,
        priv_key: Option<&Path>,
        ttl: Duration,
    ) -> Result<JwtTokens, String> {
        let algorithm: Algorithm = method
            .parse()
            .map_err(|_| format!("invalid auth signature method {method:?}"))?;
        let read = |k: &str, path: Option<&Path>| -> Result<Option<Vec<u8>>, String> {
            path.map(|p| {
                std::fs::read(p).map_err(|e| format!("cannot read {k} {}: {e}", p.display()))
            })
            .transpose()
        };
        let (public, private) = (read("pub-key", pub_key)?, read("priv-key", priv_key)?);
        let bad = |k: &str, e: jsonwebtoken::errors::Error| format!("invalid {k}: {e}");
        use Algorithm::*;
        let (signing, verifying) = match algorithm {
            HS256 | HS384 | HS512 => {
                let secret = private.ok_or("missing key data (priv-key)")?;
                (
                    Some(EncodingKey::from_secret(&secret)),
                    DecodingKey::from_secret(&secret),
                )
            }
            _ => {
                let public = public.ok_or("missing key data (pub-key)")?;
                let verifying = match algorithm {
                    RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => {
                        DecodingKey::from_rsa_pem(&public)
                    }
                    ES256 | ES384 => DecodingKey::from_ec_pem(&public),
                    _ => DecodingKey::from_ed_pem(&public),
                }
                .map_err(|e| bad("pub-key", e))?;
                let signing = match &private {
                    None => None,
                    Some(p) => Some(
                        match algorithm {
                            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => {
                                EncodingKey::from_rsa_pem(p)
                            }
                            ES256 | ES384 => EncodingKey::from_ec_pem(p),
                            _ => EncodingKey::from_ed_pem(p),
                        }
                        .map_err(|e| bad("priv-key", e))?,
                    ),
                };
                (signing, verifying)
            }
        };
        let tokens = JwtTokens {
            algorithm,
            signing,
            verifying,
            ttl,
        };
        // A key pair that does not match would make tokens no member accepts.
        if tokens.signing.is_some() {
            let probe = tokens.sign("probe", 0).map_err(|e| e.to_string())?;
            if tokens.verify(&probe).is_none() {
                return Err("public and private keys don't match".into());
            }
        }
        Ok(tokens)
    }

    /// A token for `username` made at auth `revision`.
    pub fn sign(&self, username: &str, revision: u64) -> Result<String, EtcdError> {
        let key = self.signing.as_ref().ok_or(errors::JWT_VERIFY_ONLY)?;
        let exp = SystemTime::now()
            .checked_add(self.ttl)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let claims = Claims {
            username: username.to_string(),
            revision,
            exp,
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).map_err(|e| {
            tracing::warn!(error = %e, "cannot sign a JWT token");
            errors::INVALID_AUTH_TOKEN
        })
    }

    /// The user and revision a valid, unexpired token names.
    pub fn verify(&self, token: &str) -> Option<(String, u64)> {
        let mut v = Validation::new(self.algorithm);
        v.leeway = 0;
        match jsonwebtoken::decode::<Claims>(token, &self.verifying, &v) {
            Ok(t) => Some((t.claims.username, t.claims.revision)),
            Err(e) => {
                tracing::warn!(error = %e, "failed to parse a JWT token");
                None
            }
        }
    }
}
