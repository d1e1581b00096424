//! Deliberately broken behaviour, for proving that the chaos invariants catch real bugs
//! (mutation testing). Each [`Mutant`] names one bug planted in the actors behind
//! [`active`]; a run switches one on for its own thread with [`activate`].
//!
//! The switch exists only with the `mutants` feature (which only the workspace's tests turn
//! on): without it [`active`] is a constant `false` and the planted bugs compile away, and
//! asking for a mutant panics rather than run a test that cannot fail.

/// A bug the actors can be built to have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mutant {
    /// The vdrive acknowledges a directory write without recording it in its journal.
    VdriveAcksBeforeJournal,
    /// The storage server acknowledges a share's close without committing it (the share
    /// stays incoming: a restart or power loss takes it).
    StorageAcksCloseBeforeCommit,
    /// The downloader takes a block without checking it against the share's block hashes.
    DownloaderSkipsBlockHash,
    /// The uploader counts the shares placed, not the servers holding distinct shares, as
    /// its happiness.
    UploaderCountsSharesAsHappiness,
    /// The reply cache forgets that a request was answered: a duplicate is carried out
    /// again, and answered as the second attempt fares.
    ReplyCacheReexecutesDuplicates,
}

impl Mutant {
    pub const ALL: [Mutant; 5] = [
        Mutant::VdriveAcksBeforeJournal,
        Mutant::StorageAcksCloseBeforeCommit,
        Mutant::DownloaderSkipsBlockHash,
        Mutant::UploaderCountsSharesAsHappiness,
        Mutant::ReplyCacheReexecutesDuplicates,
    ];
}

#[cfg(feature = "mutants")]
mod switch {
    use super::Mutant;
    use std::cell::Cell;

    thread_local! {
        // Per thread: a simulated run is single-threaded, and the other tests of the same
        // process run beside it, unmutated.
        static ACTIVE: Cell<Option<Mutant>> = const { Cell::new(None) };
    }

    pub fn active(mutant: Mutant) -> bool {
        ACTIVE.with(|active| active.get() == Some(mutant))
    }

    pub fn set(mutant: Option<Mutant>) -> Option<Mutant> {
        ACTIVE.with(|active| active.replace(mutant))
    }
}

/// Whether `mutant`'s bug is switched on (on this thread).
#[inline]
pub fn active(mutant: Mutant) -> bool {
    #[cfg(feature = "mutants")]
    return switch::active(mutant);
    #[cfg(not(feature = "mutants"))]
    {
        let _ = mutant;
        false
    }
}

/// Switches `mutant` on (or, with `None`, every mutant off) for this thread until the
/// guard is dropped.
///
/// # Panics
/// If a mutant is asked for in a build without the `mutants` feature.
pub fn activate(mutant: Option<Mutant>) -> Guard {
    #[cfg(feature = "mutants")]
    return Guard {
        previous: switch::set(mutant),
    };
    #[cfg(not(feature = "mutants"))]
    {
        assert!(
            mutant.is_none(),
            "{mutant:?} asked for, but cairn-actors was built without the `mutants` feature"
        );
        Guard { previous: None }
    }
}

/// Puts back the mutant that was active before [`activate`].
#[must_use = "the mutant is switched off again when the guard is dropped"]
pub struct Guard {
    #[cfg_attr(not(feature = "mutants"), allow(dead_code))]
    previous: Option<Mutant>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        #[cfg(feature = "mutants")]
        switch::set(self.previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "mutants")]
    #[test]
    fn a_mutant_is_active_on_its_own_thread_until_its_guard_drops() {
        let m = Mutant::StorageAcksCloseBeforeCommit;
        assert!(!active(m));
        {
            let _guard = activate(Some(m));
            assert!(active(m));
            assert!(!active(Mutant::VdriveAcksBeforeJournal));
            let elsewhere = std::thread::spawn(move || active(m)).join().unwrap();
            assert!(!elsewhere, "other threads run unmutated");
            {
                let _none = activate(None);
                assert!(!active(m));
            }
            assert!(active(m), "the inner guard put the mutant back");
        }
        assert!(!active(m));
    }

    #[cfg(not(feature = "mutants"))]
    #[test]
    #[should_panic(expected = "without the `mutants` feature")]
    fn asking_for_a_mutant_in_a_build_without_them_fails_loudly() {
        let _none = activate(None);
        assert!(!active(Mutant::VdriveAcksBeforeJournal));
        let _guard = activate(Some(Mutant::VdriveAcksBeforeJournal));
    }
}
