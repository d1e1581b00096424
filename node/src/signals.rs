//! The CLI's signals, as a Unix tool handles them: a closed pipe ends the command quietly
//! (`cairn ls | head -1`), and Ctrl-C during a download to a file leaves no partial file.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
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
