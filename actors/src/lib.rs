//! cairn's mesh logic as sans-IO actors (introducer, storage server, vdrive, uploader,
//! downloader) and the protocol messages between them.
//!
//! Not yet built: this crate is laid out so the workspace has its final shape; the actors arrive
//! with the actors-and-simulator work. It will never touch sockets, files, clocks or threads.

pub use cairn_codec as codec;
