//! The run's trace: every event the world acts on, folded into a running SHA-256 so that two
//! runs can be compared by one hex digest, and optionally kept as readable lines.
//!
//! Each event is fed to the hash as a compact binary record (time, node index, service, kind,
//! and for messages their encoded length and a fingerprint of their wire bytes), never as
//! formatted text: formatting costs more than the rest of an event. Node indexes are the
//! order nodes were added, so the digest depends only on the seed and the scenario.

use crate::counters::DropReason;
use crate::faults::Fault;
use crate::host::service_code;
use cairn_actors::{Service, Time, TimerId};
use sha2::{Digest, Sha256};
use std::fmt::{self, Write};

/// Where an event happens: a node's index and one of its services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spot {
    pub node: u32,
    pub service: Service,
}

impl fmt::Display for Spot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}/{:?}", self.node, self.service)
    }
}

/// An input other than a network message or a timer, summarised for the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputSummary {
    Start,
    Local {
        id: u64,
    },
    Plaintext {
        offset: u64,
        len: u64,
        print: u64,
    },
    Drained,
    /// A message injected directly (not through the network).
    Message {
        len: u64,
        print: u64,
    },
    Timer {
        id: u64,
    },
    Cancel {
        id: u64,
    },
}

/// One traced event.
#[derive(Debug)]
pub(crate) enum Record<'a> {
    Message {
        from: Spot,
        to: Spot,
        len: u64,
        print: u64,
    },
    Timer {
        at: Spot,
        id: TimerId,
    },
    Input {
        at: Spot,
        input: InputSummary,
    },
    Undelivered {
        at: Spot,
        input: InputSummary,
    },
    Drop {
        from: Spot,
        to: Spot,
        reason: DropReason,
        len: u64,
        print: u64,
    },
    Fault(&'a Fault),
    Panic {
        at: Spot,
    },
}

/// The running digest and, if enabled, the lines.
pub(crate) struct Trace {
    hasher: Sha256,
    lines: Option<Vec<String>>,
}

impl Trace {
    /// A trace that keeps readable lines only if `keep_lines`.
    pub fn new(keep_lines: bool) -> Self {
        Trace {
            hasher: Sha256::new(),
            lines: keep_lines.then(Vec::new),
        }
    }

    /// Adds an event that happened at `now`.
    pub fn record(&mut self, now: Time, record: &Record<'_>) {
        let mut buf = Buf::default();
        buf.u64(now.0);
        record.encode(&mut buf);
        self.hasher.update(buf.bytes());
        if let Record::Fault(fault) = record {
            // Faults carry node lists: their text form is their record, written straight
            // into the hash.
            let _ = write!(HashWriter(&mut self.hasher), "{fault:?}");
        }
        if let Some(lines) = &mut self.lines {
            let line = format!("{:>20} {record}", now.0);
            tracing::debug!(target: "cairn_sim::trace", "{line}");
            lines.push(line);
        }
    }

    /// The hex SHA-256 of every record so far.
    pub fn digest(&self) -> String {
        let hash = self.hasher.clone().finalize();
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The kept lines (empty unless enabled).
    pub fn lines(&self) -> &[String] {
        self.lines.as_deref().unwrap_or(&[])
    }
}

/// Text written into a hash.
struct HashWriter<'a>(&'a mut Sha256);

impl fmt::Write for HashWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// A small stack buffer for one binary record.
struct Buf {
    bytes: [u8; 96],
    len: usize,
}

impl Default for Buf {
    fn default() -> Self {
        Buf {
            bytes: [0; 96],
            len: 0,
        }
    }
}

impl Buf {
    fn put(&mut self, data: &[u8]) {
        let end = (self.len + data.len()).min(self.bytes.len());
        self.bytes[self.len..end].copy_from_slice(&data[..end - self.len]);
        self.len = end;
    }

    fn u8(&mut self, n: u8) {
        self.put(&[n]);
    }

    fn u64(&mut self, n: u64) {
        self.put(&n.to_le_bytes());
    }

    fn spot(&mut self, spot: Spot) {
        self.put(&spot.node.to_le_bytes());
        let (tag, op) = service_code(spot.service);
        self.u8(tag);
        self.u64(op);
    }

    fn input(&mut self, input: InputSummary) {
        match input {
            InputSummary::Start => self.u8(0),
            InputSummary::Local { id } => {
                self.u8(1);
                self.u64(id);
            }
            InputSummary::Plaintext { offset, len, print } => {
                self.u8(2);
                self.u64(offset);
                self.u64(len);
                self.u64(print);
            }
            InputSummary::Drained => self.u8(3),
            InputSummary::Message { len, print } => {
                self.u8(4);
                self.u64(len);
                self.u64(print);
            }
            InputSummary::Timer { id } => {
                self.u8(5);
                self.u64(id);
            }
            InputSummary::Cancel { id } => {
                self.u8(6);
                self.u64(id);
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Record<'_> {
    fn encode(&self, buf: &mut Buf) {
        match self {
            Record::Message {
                from,
                to,
                len,
                print,
            } => {
                buf.u8(1);
                buf.spot(*to);
                buf.spot(*from);
                buf.u64(*len);
                buf.u64(*print);
            }
            Record::Timer { at, id } => {
                buf.u8(2);
                buf.spot(*at);
                buf.u64(id.0);
            }
            Record::Input { at, input } => {
                buf.u8(3);
                buf.spot(*at);
                buf.input(*input);
            }
            Record::Undelivered { at, input } => {
                buf.u8(4);
                buf.spot(*at);
                buf.input(*input);
            }
            Record::Drop {
                from,
                to,
                reason,
                len,
                print,
            } => {
                buf.u8(5);
                buf.u8(*reason as u8);
                buf.spot(*to);
                buf.spot(*from);
                buf.u64(*len);
                buf.u64(*print);
            }
            Record::Fault(_) => buf.u8(6),
            Record::Panic { at } => {
                buf.u8(7);
                buf.spot(*at);
            }
        }
    }
}

impl fmt::Display for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Record::Message {
                from,
                to,
                len,
                print,
            } => write!(f, "{to} <- {from} msg {len}B #{print:016x}"),
            Record::Timer { at, id } => write!(f, "{at} timer {}", id.0),
            Record::Input { at, input } => write!(f, "{at} input {input:?}"),
            Record::Undelivered { at, input } => write!(f, "{at} undelivered {input:?}"),
            Record::Drop {
                from,
                to,
                reason,
                len,
                print,
            } => write!(f, "{to} <- {from} DROP {reason:?} {len}B #{print:016x}"),
            Record::Fault(fault) => write!(f, "FAULT {fault:?}"),
            Record::Panic { at } => write!(f, "{at} PANIC"),
        }
    }
}
