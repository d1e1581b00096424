//! The CLI's signals, as a Unix tool handles them: a closed pipe ends the command quietly
//! (`cairn ls | head -1`); Ctrl-C (or SIGTERM) during a transfer undoes what is under way
//! (the upload in progress is cancelled on the node, which aborts its shares; the partial
//! file of a download is deleted) and exits 130; a second Ctrl-C exits at once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

/// A write to a closed pipe ends the process, as it ends `cat` or `ls` (Rust ignores SIGPIPE
/// by default, which turns such writes into errors, and `println!` into panics).
pub fn die_on_broken_pipe() {
    // SAFETY: restoring the default disposition of a signal, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Set by the first SIGINT or SIGTERM once [`on_interrupt`] has been called.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// What an interrupt must undo: the upload under way (its operation id on the node) and the
/// partial file being written.
struct UnderWay {
    operation: Option<String>,
    partial: Option<PathBuf>,
}

static UNDER_WAY: Mutex<UnderWay> = Mutex::new(UnderWay {
    operation: None,
    partial: None,
});

/// From now on the first SIGINT or SIGTERM undoes what is under way (see [`uploading`] and
/// [`writing`]), calling `cancel` with the operation to cancel, then exits 130. Called once
/// per process; later calls change nothing.
pub fn on_interrupt(cancel: impl Fn(&str) + Send + 'static) {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let handler = raise_flag as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler does only async-signal-safe things (an atomic swap, _exit).
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
        }
        std::thread::spawn(move || {
            while !INTERRUPTED.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let under_way = lock();
            if let Some(partial) = &under_way.partial {
                let _ = std::fs::remove_file(partial);
            }
            if let Some(operation) = &under_way.operation {
                cancel(operation);
            }
            std::process::exit(130);
        });
    });
}

/// The upload named `operation` is under way (`None`: no upload is).
pub fn uploading(operation: Option<String>) {
    lock().operation = operation;
}

/// The file at `partial` is being written, and is to go if the command is interrupted
/// (`None`: none is).
pub fn writing(partial: Option<PathBuf>) {
    lock().partial = partial;
}

fn lock() -> std::sync::MutexGuard<'static, UnderWay> {
    UNDER_WAY.lock().unwrap_or_else(PoisonError::into_inner)
}

extern "C" fn raise_flag(signal: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + signal) }
    }
}
