//! Pagination cursors that only this ledger can have issued.
//!
//! A cursor is `<position>.<mac>`: the position is what the next page starts
//! after (readable, but opaque to clients by contract), the MAC is the first
//! 16 bytes of HMAC-SHA-256 (RFC 2104) over the list's scope and the position,
//! in hex. The key is generated once per database (`sql/V2__cursor_secret.sql`)
//! and read on first use, so every instance accepts every instance's cursors,
//! also after a restart. A cursor for another list (another account's
//! history, or the account list) does not verify either.

use sha2::{Digest, Sha256};

use crate::StoreError;

/// Bytes of the MAC kept in a cursor: 128 bits, beyond guessing.
const MAC_BYTES: usize = 16;

/// The key cursors are signed with.
#[derive(Clone)]
pub(crate) struct CursorKey([u8; 32]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str("CursorKey(..)")
    }
}

impl CursorKey {
    pub(crate) fn new(bytes: &[u8]) -> Result<Self, StoreError> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            StoreError::Internal(anyhow::anyhow!(
                "ledger.cursor_secret holds {} bytes, not 32",
                bytes.len()
            ))
        })?;
        Ok(Self(key))
    }

    /// The cursor for `position` in the list named `scope`.
    pub(crate) fn seal(&self, scope: &str, position: &str) -> String {
        format!("{position}.{}", hex(&self.mac(scope, position)))
    }

    /// The position of a cursor this key sealed for `scope`; anything else is
    /// [`StoreError::InvalidCursor`].
    pub(crate) fn open<'a>(&self, scope: &str, cursor: &'a str) -> Result<&'a str, StoreError> {
        let (position, mac) = cursor.rsplit_once('.').ok_or(StoreError::InvalidCursor)?;
        let expected = hex(&self.mac(scope, position));
        // Compare every byte whatever the first difference, so the time taken
        // says nothing about how much of a forged MAC was right.
        let same = mac.len() == expected.len()
            && mac
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(position)
        } else {
            Err(StoreError::InvalidCursor)
        }
    }

    fn mac(&self, scope: &str, position: &str) -> [u8; MAC_BYTES] {
        // The scope cannot contain a NUL, so scope ‖ 0 ‖ position is unambiguous.
        let message = [scope.as_bytes(), &[0], position.as_bytes()].concat();
        let full = hmac_sha256(&self.0, &message);
        let mut mac = [0u8; MAC_BYTES];
        mac.copy_from_slice(&full[..MAC_BYTES]);
        mac
    }
}

/// HMAC-SHA-256 (RFC 2104) for a 32-byte key, which fits SHA-256's 64-byte
/// block as is.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_the_rfc_4231_test_vector() {
        // RFC 4231 test case 6 uses a 131-byte key; case 2 ("Jefe") is short.
        // This is case 2 with the key zero-padded to 32 bytes, which HMAC
        // treats identically (keys are zero-padded to the block size).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_sha256(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_unchanged_cursors_of_the_same_scope_and_key_open() {
        let key = CursorKey([7; 32]);
        let cursor = key.seal("history:a", "1700000000000000_x");
        assert_eq!(
            key.open("history:a", &cursor).ok(),
            Some("1700000000000000_x")
        );

        let other_key = CursorKey([8; 32]);
        let moved = cursor.replacen('1', "2", 1);
        let cases = [
            (key.open("history:b", &cursor), "another list"),
            (other_key.open("history:a", &cursor), "another key"),
            (key.open("history:a", &moved), "a changed position"),
            (key.open("history:a", "1700000000000000_x"), "no MAC at all"),
            (
                key.open("history:a", &cursor[..cursor.len() - 1]),
                "a shortened MAC",
            ),
        ];
        for (result, why) in cases {
            assert!(result.is_err(), "{why}");
        }
    }
}
