//! Proving the shared secret (`--secret`) without sending it: each side sends a random
//! challenge and answers the other's with HMAC-SHA256(secret, role ‖ challenge), checked in
//! constant time (ring's `hmac::verify`). The role in the message keeps a master's answer from
//! being replayed as a worker's. With no secret on either side the answers are empty.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Which side answers.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    Master,
    Worker,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Master => b"swarmer master\0",
            Role::Worker => b"swarmer worker\0",
        }
    }
}

/// A fresh 32-byte challenge.
pub fn nonce() -> Vec<u8> {
    let mut bytes = vec![0; 32];
    SystemRandom::new().fill(&mut bytes).expect("the OS random source works");
    bytes
}

/// `role`'s answer to `challenge` (empty without a secret).
pub fn answer(secret: Option<&str>, role: Role, challenge: &[u8]) -> Vec<u8> {
    let Some(secret) = secret else { return Vec::new() };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(role.label());
    ctx.update(challenge);
    ctx.sign().as_ref().to_vec()
}

/// Whether `proof` is `role`'s answer to `challenge` under `secret`; with no secret here, only
/// an empty proof is (both sides run without one).
pub fn verify(secret: Option<&str>, role: Role, challenge: &[u8], proof: &[u8]) -> bool {
    let Some(secret) = secret else { return proof.is_empty() };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut message = role.label().to_vec();
    message.extend_from_slice(challenge);
    hmac::verify(&key, &message, proof).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_secret_and_role_verify() {
        let challenge = nonce();
        let proof = answer(Some("s3cret"), Role::Worker, &challenge);
        assert!(verify(Some("s3cret"), Role::Worker, &challenge, &proof));
        assert!(!verify(Some("other"), Role::Worker, &challenge, &proof));
        assert!(!verify(Some("s3cret"), Role::Master, &challenge, &proof));
        assert!(!verify(Some("s3cret"), Role::Worker, &nonce(), &proof));
        assert!(!verify(None, Role::Worker, &challenge, &proof));
        assert!(!verify(Some("s3cret"), Role::Worker, &challenge, &[]));
        assert!(verify(None, Role::Worker, &challenge, &answer(None, Role::Worker, &challenge)));
    }
}
