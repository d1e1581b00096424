//! The CLI's signals, as a Unix tool handles them: a closed pipe ends the command quietly
//! (`cairn ls | head -1`), Ctrl-C during a download to a file leaves no partial file, and
//! Ctrl-C during an upload cancels it on the node.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The partial file to delete if the command is interrupted.
static PARTIAL: OnceLock<CString> = OnceLock::new();

/// A write to a closed pipe ends the process, as it ends `cat` or `ls` (Rust ignores SIGPIPE
/// by default, which turns such writes into errors, and `println!` into panics).
pub fn die_on_broken_pipe() {
    // SAFETY: restoring the default disposition of a signal, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Set by the first SIGINT or SIGTERM once [`catch_interrupts`] is called.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// From now on the first SIGINT or SIGTERM only raises a flag ([`interrupted`]), so that the
/// command can undo what it started; a second one ends the process at once.
pub fn catch_interrupts() {
    let handler = raise_flag as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler does only async-signal-safe things (an atomic swap, _exit).
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Whether SIGINT or SIGTERM came since [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

extern "C" fn raise_flag(signal: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + signal) }
    }
}

/// Deletes `path` if SIGINT or SIGTERM ends the process (only one such path per process).
pub fn remove_on_interrupt(path: &Path) {
    let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    if PARTIAL.set(path).is_err() {
        return;
    }
    let handler = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler calls only async-signal-safe functions (unlink, _exit) on a path
    // set before it was installed.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

extern "C" fn on_interrupt(signal: libc::c_int) {
    if let Some(path) = PARTIAL.get() {
        // SAFETY: unlink and _exit are async-signal-safe; the path is a valid C string.
        unsafe {
            libc::unlink(path.as_ptr());
        }
    }
    // SAFETY: as above.
    unsafe { libc::_exit(128 + signal) }
}
