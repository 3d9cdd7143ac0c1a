//! etcd's simple tokens: `<16 random letters>.<log index>`, made when the
//! Authenticate entry is applied, so every member knows every token. A
//! token unused for the TTL expires; deleting a user or changing its
//! password drops its tokens, disabling auth drops them all. Tokens live in
//! memory only, as in etcd.

use rand::Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// etcd's `--auth-token-ttl` default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

const PREFIX_LEN: usize = 16;

/// Every request with a token looks it up: lookups share a read lock and
/// restart the TTL with an atomic store; only assigning and dropping
/// tokens take the write lock.
#[derive(Debug)]
pub struct SimpleTokens {
    ttl: Duration,
    /// Deadlines are milliseconds since this instant.
    epoch: Instant,
    tokens: RwLock<HashMap<String, Token>>,
}

#[derive(Debug)]
struct Token {
    user: String,
    expires_ms: AtomicU64,
}

impl SimpleTokens {
    pub fn new(ttl: Duration) -> SimpleTokens {
        SimpleTokens {
            ttl: if ttl.is_zero() { DEFAULT_TTL } else { ttl },
            epoch: Instant::now(),
            tokens: RwLock::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn deadline_ms(&self) -> u64 {
        self.now_ms() + self.ttl.as_millis() as u64
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Token>> {
        self.tokens.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Token>> {
        self.tokens.write().unwrap_or_else(|e| e.into_inner())
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
        let now = self.now_ms();
        let expires_ms = AtomicU64::new(self.deadline_ms());
        let mut tokens = self.write();
        // Expired tokens go when new ones come (lookups only skip them).
        tokens.retain(|_, t| t.expires_ms.load(Ordering::Relaxed) > now);
        tokens.insert(
            token,
            Token {
                user: user.to_string(),
                expires_ms,
            },
        );
    }

    /// The user a live token stands for; using it restarts its TTL.
    pub fn user_of(&self, token: &str) -> Option<String> {
        let now = self.now_ms();
        let tokens = self.read();
        let t = tokens.get(token)?;
        if t.expires_ms.load(Ordering::Relaxed) <= now {
            return None;
        }
        t.expires_ms.store(self.deadline_ms(), Ordering::Relaxed);
        Some(t.user.clone())
    }

    pub fn invalidate_user(&self, user: &str) {
        self.write().retain(|_, t| t.user != user);
    }

    pub fn clear(&self) {
        self.write().clear();
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
