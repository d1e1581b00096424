//! cairn's real runtime: hosts the actors on tokio, the authenticated TCP transport and the
//! on-disk stores.
//!
//! Not yet built: this crate is laid out so the workspace has its final shape.

pub use cairn_actors as actors;
