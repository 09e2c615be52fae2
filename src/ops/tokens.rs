//! Operators: API tokens. A token is shown once, when created; the store keeps only its
//! SHA-256. Tokens are 256 random bits, so a fast hash is enough (there is nothing to guess
//! from), and looking one up is an index hit.

use sha2::{Digest, Sha256};

use crate::store::ops::{Role, TokenRow};
use crate::store::{Store, StoreError};

/// Every token starts with this, so a leaked one is recognisable in a scan.
pub const PREFIX: &str = "xz_";

/// A new random token.
pub fn generate() -> String {
    // Two v4 UUIDs: 244 random bits from the operating system's generator.
    format!(
        "{PREFIX}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// What the store keeps of a token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token; returns it (to show once) with its stored row.
pub async fn create(
    store: &dyn Store,
    name: &str,
    role: Role,
) -> Result<(String, TokenRow), StoreError> {
    let token = generate();
    let row = store.create_token(name, role, &hash(&token)).await?;
    tracing::info!(name, role = %role, id = %row.id, "Created an API token.");
    Ok((token, row))
}

/// The unrevoked token a caller presented, if it is one.
pub async fn authenticate(
    store: &dyn Store,
    presented: &str,
) -> Result<Option<TokenRow>, StoreError> {
    if !presented.starts_with(PREFIX) {
        return Ok(None);
    }
    store.find_token(&hash(presented)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert!(!hash(&a).contains(&a[PREFIX.len()..]));
    }
}
