//! etcd's simple tokens: `<16 random letters>.<log index>`, made when the
//! Authenticate entry is applied, so every member knows every token. A
//! token unused for the TTL expires; deleting a user or changing its
//! password drops its tokens, disabling auth drops them all. Tokens live in
//! memory only, as in etcd.

use rand::Rng;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// etcd's `--auth-token-ttl` default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

const PREFIX_LEN: usize = 16;

#[derive(Debug)]
pub struct SimpleTokens {
    ttl: Duration,
    tokens: Mutex<HashMap<String, Token>>,
}

#[derive(Debug)]
struct Token {
    user: String,
    expires: Instant,
}

impl SimpleTokens {
    pub fn new(ttl: Duration) -> SimpleTokens {
        SimpleTokens {
            ttl: if ttl.is_zero() { DEFAULT_TTL } else { ttl },
            tokens: Mutex::default(),
        }
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, Token>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh random prefix (letters only, as etcd's).
    pub fn new_prefix() -> String {
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut rng = rand::rng();
        (0..PREFIX_LEN)
            .map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char)
            .collect()
    }

    /// The token an Authenticate entry at `index` makes.
    pub fn token_for(prefix: &str, index: u64) -> String {
        format!("{prefix}.{index}")
    }

    /// The log index a token was made at (None: not a simple token).
    pub fn index_of(token: &str) -> Option<u64> {
        let (prefix, index) = token.split_once('.')?;
        if prefix.contains('.') || index.contains('.') {
            return None;
        }
        index.parse().ok()
    }

    pub fn assign(&self, token: String, user: &str) {
        let now = Instant::now();
        let mut tokens = self.tokens();
        tokens.retain(|_, t| t.expires > now);
        tokens.insert(
            token,
            Token {
                user: user.to_string(),
                expires: now + self.ttl,
            },
        );
    }

    /// The user a live token stands for; using it restarts its TTL.
    pub fn user_of(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut tokens = self.tokens();
        let t = tokens.get_mut(token)?;
        if t.expires <= now {
            tokens.remove(token);
            return None;
        }
        t.expires = now + self.ttl;
        Some(t.user.clone())
    }

    pub fn invalidate_user(&self, user: &str) {
        self.tokens().retain(|_, t| t.user != user);
    }

    pub fn clear(&self) {
        self.tokens().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_index_and_expire() {
        let p = SimpleTokens::new_prefix();
        assert_eq!(p.len(), PREFIX_LEN);
        assert!(p.chars().all(|c| c.is_ascii_alphabetic()));
        let t = SimpleTokens::token_for(&p, 42);
        assert_eq!(SimpleTokens::index_of(&t), Some(42));
        assert_eq!(SimpleTokens::index_of("nodot"), None);
        assert_eq!(SimpleTokens::index_of("a.b.1"), None);

        let tokens = SimpleTokens::new(Duration::from_millis(50));
        tokens.assign(t.clone(), "alice");
        assert_eq!(tokens.user_of(&t).as_deref(), Some("alice"));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(tokens.user_of(&t), None);

        tokens.assign(t.clone(), "alice");
        tokens.invalidate_user("alice");
        assert_eq!(tokens.user_of(&t), None);
    }
}
