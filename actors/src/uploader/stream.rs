//! The uploader's plaintext stream: pulling segments from the local user, encoding them,
//! sending each block to the homes waiting for it, and, after the last segment, the trailers
//! and the Closes.

use super::{Close, Eof, Home, Run, UEB_ALLOWANCE};
use crate::actor::{Context, Effect};
use crate::ids::{NodeId, ShareNum};
use crate::local::UploadError;
use cairn_codec::Encoder;

impl Run {
    /// Asks for the next segment, if the window has room and some home (or the cap) needs it.
    pub(super) fn pull_next(&mut self, ctx: &mut Context<'_>) {
        // While allocations are out, a new home may yet restart the stream: wait for them.
        if self.allocating() || self.stream.pull.is_some() {
            return;
        }
        let g = self.geometry;
        // Once the cap is known, the stream runs only to bring re-homed shares up to date.
        let needed = self.stream.next < g.num_segments
            && (self.file.is_none()
                || self.homes.values().any(|h| h.next_segment < g.num_segments));
        if !needed {
            return self.probe_eof(ctx);
        }
        if self.unacked.len() >= self.config.window.max(1) {
            return;
        }
        let offset = self.stream.next * g.segment_size;
        self.stream.pull = Some(offset);
        ctx.push(Effect::Pull {
            from: self.local,
            offset,
            max: g.segment_len(self.stream.next) as usize,
        });
    }

    /// Once, after the first pass: a pull past the promised end must come back empty.
    pub(super) fn probe_eof(&mut self, ctx: &mut Context<'_>) {
        if self.eof == Eof::Unchecked {
            self.eof = Eof::Pending;
            ctx.push(Effect::Pull {
                from: self.local,
                offset: self.geometry.size,
                max: 1,
            });
        }
    }

    pub(super) fn on_plaintext(&mut self, offset: u64, data: Vec<u8>, ctx: &mut Context<'_>) {
        let size = self.geometry.size;
        if self.eof == Eof::Pending && offset == size {
            if data.is_empty() {
                self.eof = Eof::Confirmed;
            } else {
                let msg = format!("the input has more than the promised {size} bytes");
                self.fail(UploadError::Input(msg), ctx);
            }
            return;
        }
        // An answer to a pull made before the stream restarted: not wanted any more.
        if self.stream.pull != Some(offset) {
            return;
        }
        self.stream.pull = None;
        let expected = self.geometry.segment_len(self.stream.next) as usize;
        if data.len() != expected {
            let end = offset + data.len() as u64;
            let msg = format!(
                "asked for {expected} bytes at offset {offset} and got {}: the input ended \
                 after {end} of the promised {size} bytes (or the source returned too much)",
                data.len()
            );
            return self.fail(UploadError::Input(msg), ctx);
        }
        if let Err(e) = self.encode_and_send(&data, ctx) {
            self.fail(e, ctx);
        }
    }

    /// Encodes the stream's next segment and sends its blocks to the homes waiting for it.
    pub(super) fn encode_and_send(
        &mut self,
        plaintext: &[u8],
        ctx: &mut Context<'_>,
    ) -> Result<(), UploadError> {
        let s = self.stream.next;
        let mut encoder = match self.stream.encoder.take() {
            Some(encoder) => encoder,
            None => Encoder::new(self.key, self.params, self.geometry.size).map_err(codec)?,
        };
        let targets: Vec<(ShareNum, NodeId)> = self
            .homes
            .iter()
            .filter(|(_, h)| h.next_segment == s)
            .map(|(&key, _)| key)
            .collect();
        let blocks = encoder.encode_segment(plaintext).map_err(codec)?;
        for key in targets {
            if s == 0 {
                self.send_write(key, 0, &self.layout.header(), None, ctx);
            }
            self.send_write(
                key,
                blocks.offset,
                blocks.block(key.0.index()),
                Some(s),
                ctx,
            );
            if let Some(home) = self.homes.get_mut(&key) {
                home.next_segment = s + 1;
            }
        }
        self.stream.next = s + 1;
        debug_assert!(
            self.unacked.len() <= self.config.window.max(1),
            "a segment is pulled only while the window has room"
        );
        if self.stream.next < self.geometry.num_segments {
            self.stream.encoder = Some(encoder);
            return Ok(());
        }
        self.end_of_stream(encoder)
    }

    /// After the last segment: keeps the encoded file from the first pass. A later pass (to
    /// rebuild re-homed shares) must give the very same file.
    pub(super) fn end_of_stream(&mut self, encoder: Encoder) -> Result<(), UploadError> {
        let file = encoder.finish().map_err(codec)?;
        match &self.file {
            None => {
                if file.layout.share_size(file.ueb.len() as u64) > self.allocated_size() {
                    return Err(UploadError::Invalid(format!(
                        "the {}-byte UEB is over the {UEB_ALLOWANCE} bytes allocated for it",
                        file.ueb.len()
                    )));
                }
                self.file = Some(file);
            }
            Some(first) if first.cap != file.cap => {
                return Err(UploadError::Input(
                    "reading the input again (to rebuild a share) gave different bytes: the \
                     input changed during the upload"
                        .into(),
                ));
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Sends each complete home its trailer; once every home's writes are all in, closes them.
    /// Closing none before all are written means a failure before that point leaves no
    /// share visible anywhere.
    pub(super) fn finish_homes(&mut self, ctx: &mut Context<'_>) {
        let last = self.geometry.num_segments;
        let trail: Vec<(ShareNum, NodeId)> = self
            .homes
            .iter()
            .filter(|(_, h)| h.next_segment == last && !h.trailer_sent)
            .map(|(&key, _)| key)
            .collect();
        for key in trail {
            let Some(trailer) = self.file.as_ref().map(|f| f.share_trailer(key.0.index())) else {
                return;
            };
            self.send_write(key, self.layout.plaintext_hash_tree, &trailer, None, ctx);
            if let Some(home) = self.homes.get_mut(&key) {
                home.trailer_sent = true;
            }
        }
        let written = |h: &Home| h.close != Close::NotYet || (h.trailer_sent && h.writes == 0);
        if self.allocating() || !self.homes.values().all(written) {
            return;
        }
        let close: Vec<(ShareNum, NodeId)> = self
            .homes
            .iter()
            .filter(|(_, h)| h.close == Close::NotYet)
            .map(|(&key, _)| key)
            .collect();
        for key in close {
            self.send_close(key, ctx);
            if let Some(home) = self.homes.get_mut(&key) {
                home.close = Close::Sent;
            }
        }
    }
}

/// A codec failure while encoding input already checked to be the right length: the
/// parameters were validated at the start, so this is a bug, reported as such.
fn codec(e: cairn_codec::Error) -> UploadError {
    UploadError::Invalid(format!("encoding failed: {e}"))
}
