// Included by build.rs and by `transcode::schema`, so that both compute the same slots.

/// The slot of `key` in a table of `1 << (64 - shift)` slots built with `seed`: a hash of the
/// key's length and its bytes, eight at a time (JSON keys are mostly under 16 bytes).
#[inline]
fn slot(key: &[u8], seed: u64, shift: u32) -> usize {
    let mix = |h: u64, word: u64| (h.rotate_left(23) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut h = key.len() as u64 ^ seed;
    let mut words = key.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        h = mix(h, u64::from_le_bytes(bytes));
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let word = tail.iter().enumerate().fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i));
        h = mix(h, word);
    }
    (h >> shift) as usize
}
