//! The membership filter of live tokens: a Bloom filter over token hashes that the server sends
//! each filter VM, so that a well-formed token nobody issued is refused inside Envoy instead of
//! costing a server round trip (the checksum is public: anyone can mint well-formed tokens).
//!
//! A Bloom filter answers "certainly absent" or "maybe present": a live token is never refused
//! by it; a forged one passes with the false-positive rate (about 1 in 4 million at
//! [`BITS_PER_TOKEN`] and the server's sizing) and is then resolved as before. SHA-256 output is uniform, so the hash's own bytes are the filter's
//! hash functions: no hashing on the request path. The layout is the wire format
//! (`tollgate.v1.Membership`).

use crate::token::TokenHash;

/// Bits per live token. Issue 18 asks that a flood of forged tokens cost the server nothing:
/// 10 bits let 0.24 % of them through (`tollgate-bench flood`: 120 of 50,000, each a Resolve
/// per worker per `negativeTtlSeconds`); 40 bits and 8 probes give (1 - e^(-8/40))^8 ≈ 1.2e-6,
/// and 2.3e-7 at the server's 1.25x sizing (0.01 of 50,000). The price is 5 bytes per token
/// per VM: 6.25 MB at 1,000,000 tokens.
pub const BITS_PER_TOKEN: usize = 40;
/// Probes per hash: the most a 32-byte hash gives as 4-byte words. More (the optimum for 40
/// bits is 40 · ln 2 ≈ 28) would need hashing on the request path; 8 already make the rate
/// small enough.
pub const PROBES: u32 = 8;
/// The smallest filter, in bytes (a new store still gets a useful rate as tokens are added).
const MIN_BYTES: usize = 1024;
/// The largest filter accepted from the wire, in bytes: 64 MiB covers ~13 million tokens.
pub const MAX_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("the membership filter has no bits")]
    Empty,
    #[error("the membership filter is larger than {MAX_BYTES} bytes")]
    TooLarge,
    #[error("the membership filter sets {0} bits per hash; 1 to 8 are possible")]
    Probes(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    bits: Vec<u8>,
    probes: u32,
}

impl Membership {
    /// A filter sized for `expected` tokens (with room for growth until the next rebuild),
    /// holding `hashes`.
    pub fn build<'a>(expected: usize, hashes: impl IntoIterator<Item = &'a TokenHash>) -> Self {
        let bytes = expected
            .saturating_mul(BITS_PER_TOKEN)
            .div_ceil(8)
            .clamp(MIN_BYTES, MAX_BYTES);
        let mut filter = Membership {
            bits: vec![0; bytes],
            probes: PROBES,
        };
        for hash in hashes {
            filter.insert(hash);
        }
        filter
    }

    /// A filter received on the wire.
    pub fn from_parts(bits: Vec<u8>, probes: u32) -> Result<Self, MembershipError> {
        if bits.is_empty() {
            return Err(MembershipError::Empty);
        }
        if bits.len() > MAX_BYTES {
            return Err(MembershipError::TooLarge);
        }
        if !(1..=8).contains(&probes) {
            return Err(MembershipError::Probes(probes));
        }
        Ok(Membership { bits, probes })
    }

    pub fn bits(&self) -> &[u8] {
        &self.bits
    }

    pub fn probes(&self) -> u32 {
        self.probes
    }

    pub fn insert(&mut self, hash: &TokenHash) {
        for (byte, mask) in self.positions(hash) {
            if let Some(b) = self.bits.get_mut(byte) {
                *b |= mask;
            }
        }
    }

    /// `false`: no live token has this hash. `true`: one may have.
    pub fn may_contain(&self, hash: &TokenHash) -> bool {
        self.positions(hash)
            .all(|(byte, mask)| self.bits.get(byte).is_some_and(|b| b & mask != 0))
    }

    fn positions<'a>(&self, hash: &'a TokenHash) -> impl Iterator<Item = (usize, u8)> + 'a {
        // u64: 8 · MAX_BYTES fits a u32, but the product of a u32 probe and the length must not
        // wrap on 32-bit wasm.
        let total_bits = (self.bits.len() as u64).saturating_mul(8).max(1);
        hash.as_bytes()
            .chunks_exact(4)
            .take(self.probes as usize)
            .map(move |chunk| {
                let word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                let bit = u64::from(word) % total_bits;
                ((bit / 8) as usize, 1u8 << (bit % 8))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u64) -> TokenHash {
        use sha2::{Digest, Sha256};
        TokenHash::from_bytes(Sha256::digest(i.to_le_bytes()).into())
    }

    #[test]
    fn every_member_is_found_and_most_strangers_are_not() {
        let members: Vec<TokenHash> = (0..10_000).map(hash).collect();
        let filter = Membership::build(members.len(), &members);
        assert!(members.iter().all(|h| filter.may_contain(h)));
        let false_positives = (10_000..110_000)
            .map(hash)
            .filter(|h| filter.may_contain(h))
            .count();
        // 40 bits and 8 probes: about 1.2e-6, so 0.12 expected; allow for chance.
        assert!(false_positives < 5, "{false_positives} of 100000");
    }

    #[test]
    fn inserted_hashes_are_found() {
        let mut filter = Membership::build(0, []);
        assert!(!filter.may_contain(&hash(1)));
        filter.insert(&hash(1));
        assert!(filter.may_contain(&hash(1)));
    }

    #[test]
    fn the_wire_form_round_trips_and_bad_ones_are_refused() {
        let filter = Membership::build(100, &[hash(7)]);
        let back = Membership::from_parts(filter.bits().to_vec(), filter.probes());
        assert_eq!(back.as_ref(), Ok(&filter));
        assert_eq!(
            Membership::from_parts(Vec::new(), 7),
            Err(MembershipError::Empty)
        );
        assert_eq!(
            Membership::from_parts(vec![0; 8], 9),
            Err(MembershipError::Probes(9))
        );
        assert_eq!(
            Membership::from_parts(vec![0; 8], 0),
            Err(MembershipError::Probes(0))
        );
        // A one-byte filter still answers (every probe lands in it).
        let tiny = Membership::from_parts(vec![0xff], 8);
        assert!(tiny.is_ok_and(|f| f.may_contain(&hash(3))));
    }
}
