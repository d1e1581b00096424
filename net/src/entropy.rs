//! Where the runtime's randomness comes from: the OS, or, built with `--cfg madsim`, the
//! simulation's seeded generator, so that a simulated run repeats exactly from its seed.
//!
//! (rand's `OsRng` asks the kernel directly, past madsim's reach, so everything in `net`
//! that wants randomness asks here instead. TLS's own randomness, which ring takes from the
//! kernel, is not seeded by the simulation; it changes the bytes of a handshake, never their
//! sizes or timing, so a simulated run still repeats event for event.)

/// Fills `bytes` with random bytes.
#[cfg(not(madsim))]
pub fn fill(bytes: &mut [u8]) -> Result<(), rand::Error> {
    use rand::RngCore;
    rand::rngs::OsRng.try_fill_bytes(bytes)
}

/// Fills `bytes` from the simulation's generator.
#[cfg(madsim)]
pub fn fill(bytes: &mut [u8]) -> Result<(), rand::Error> {
    use madsim::rand::RngCore;
    madsim::rand::thread_rng().fill_bytes(bytes);
    Ok(())
}

/// A 32-byte seed for a generator.
pub fn seed() -> Result<[u8; 32], rand::Error> {
    let mut seed = [0u8; 32];
    fill(&mut seed)?;
    Ok(seed)
}
