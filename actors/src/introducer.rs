//! The introducer: how storage servers and clients find each other.
//!
//! Storage servers announce themselves (a signed [`Announcement`]: node id, address, free
//! space) periodically; clients subscribe and receive every announcement the introducer
//! knows, then each change. The introducer checks signatures, and that a node announces only
//! itself, but vouches for nothing else: clients verify announcements themselves and connect
//! to servers by their key.
//!
//! A node subscribes once, however many of its actors ask (the table is keyed by node, not
//! by an address the peer makes up), and gets the whole set at most once per
//! [`FULL_SET_INTERVAL`]: a request of a few bytes cannot make the introducer send megabytes
//! in a loop.
//!
//! Its state is volatile by design: a restarted introducer starts empty and fills up again
//! as servers re-announce and clients re-subscribe. Both maps are bounded; when one is full,
//! the entry heard from least recently makes room, so live servers and clients (which keep
//! repeating themselves) push out dead ones.

use crate::actor::{Actor, Addr, Context, Input, Time};
use crate::ids::NodeId;
use crate::protocol::{Announcement, Message, RemoteError, Request, RequestId, Response};
use std::collections::BTreeMap;

/// The most storage servers remembered.
pub const MAX_SERVERS: usize = 100_000;
/// The most subscribers served.
pub const MAX_SUBSCRIBERS: usize = 100_000;
/// The shortest time between two sendings of the whole set to one node.
pub const FULL_SET_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// Announcements per message when a subscriber gets the whole set: an announcement encodes
/// to at most ~420 bytes, so a message stays well under the frame limit.
pub const ANNOUNCEMENTS_PER_MESSAGE: usize = 4096;

/// The introducer actor. See the module docs.
pub struct Introducer {
    servers: Recent<NodeId, Announcement>,
    subscribers: Recent<NodeId, Subscriber>,
}

/// A subscribed node: where its changes go, and when it last got the whole set.
#[derive(Clone, Copy, Debug)]
struct Subscriber {
    addr: Addr,
    full_set_sent: Time,
}

impl Introducer {
    /// An introducer that knows no one yet, with the default limits.
    pub fn new() -> Self {
        Self::with_limits(MAX_SERVERS, MAX_SUBSCRIBERS)
    }

    /// An introducer with other limits (for tests and small simulations).
    pub fn with_limits(max_servers: usize, max_subscribers: usize) -> Self {
        Introducer {
            servers: Recent::new(max_servers),
            subscribers: Recent::new(max_subscribers),
        }
    }

    /// The newest announcement of every server known, in node id order.
    pub fn servers(&self) -> impl Iterator<Item = &Announcement> {
        self.servers.values()
    }

    /// How many subscribers are served.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    fn on_request(
        &mut self,
        from: Addr,
        id: RequestId,
        deadline: Time,
        body: Request,
        ctx: &mut Context<'_>,
    ) {
        if ctx.now() > deadline {
            tracing::trace!(?from, ?id, "introducer: request past its deadline, ignored");
            return;
        }
        match body {
            Request::Announce(announcement) => self.announce(from, id, *announcement, ctx),
            Request::Subscribe => self.subscribe(from, id, ctx),
            _ => reply(ctx, from, id, Response::Err(RemoteError::Unsupported)),
        }
    }

    fn announce(
        &mut self,
        from: Addr,
        id: RequestId,
        announcement: Announcement,
        ctx: &mut Context<'_>,
    ) {
        if announcement.node != from.node {
            tracing::debug!(?from, node = ?announcement.node, "introducer: announcement for another node, ignored");
            let why = "a node announces only itself";
            return reply(
                ctx,
                from,
                id,
                Response::Err(RemoteError::Malformed(why.into())),
            );
        }
        if !announcement.verify() {
            tracing::debug!(?from, "introducer: announcement does not verify, ignored");
            let why = "the announcement's signature or node id does not verify, or its \
                       address is too long";
            return reply(
                ctx,
                from,
                id,
                Response::Err(RemoteError::Malformed(why.into())),
            );
        }
        reply(ctx, from, id, Response::Ok);
        let Some(news) = self.remember(announcement) else {
            return;
        };
        for subscriber in self.subscribers.values() {
            ctx.send(subscriber.addr, Message::Announcements(vec![news.clone()]));
        }
    }

    /// Keeps `announcement` if it is newer than what is known of its node; returns it if
    /// subscribers should hear of it: a new server, a new address, nickname or figures, or a
    /// restart (clients that gave up on the server dial it again). A newer announcement that
    /// says nothing new (only its seq moved, as at every periodic re-announcement) is kept
    /// but not pushed: subscribers already hold a valid announcement with the same content.
    fn remember(&mut self, announcement: Announcement) -> Option<Announcement> {
        let known = self.servers.get(&announcement.node);
        if known.is_some_and(|k| k.seq >= announcement.seq) {
            return None;
        }
        let news = known.is_none_or(|k| {
            k.address != announcement.address
                || k.nickname != announcement.nickname
                || k.figures != announcement.figures
                || k.started != announcement.started
        });
        let node = announcement.node;
        if let Some(evicted) = self.servers.insert(node, announcement.clone()) {
            tracing::info!(
                ?evicted,
                "introducer: server table full, forgot the stalest"
            );
        }
        news.then_some(announcement)
    }

    fn subscribe(&mut self, from: Addr, id: RequestId, ctx: &mut Context<'_>) {
        let now = ctx.now();
        let sent_lately = self
            .subscribers
            .get(&from.node)
            .is_some_and(|s| s.addr == from && now < s.full_set_sent.after(FULL_SET_INTERVAL));
        let full_set_sent = match sent_lately {
            true => self
                .subscribers
                .get(&from.node)
                .map_or(now, |s| s.full_set_sent),
            false => now,
        };
        let subscriber = Subscriber {
            addr: from,
            full_set_sent,
        };
        if let Some(evicted) = self.subscribers.insert(from.node, subscriber) {
            tracing::info!(
                ?evicted,
                "introducer: subscriber table full, dropped the stalest"
            );
        }
        reply(ctx, from, id, Response::Ok);
        if sent_lately {
            return; // it has the set, and changes since come as they happen
        }
        let all: Vec<&Announcement> = self.servers.values().collect();
        if all.is_empty() {
            // An empty set is news too: the subscriber learns the introducer is there.
            return ctx.send(from, Message::Announcements(Vec::new()));
        }
        for chunk in all.chunks(ANNOUNCEMENTS_PER_MESSAGE) {
            let chunk = chunk.iter().map(|&a| a.clone()).collect();
            ctx.send(from, Message::Announcements(chunk));
        }
    }
}

impl Default for Introducer {
    fn default() -> Self {
        Self::new()
    }
}

impl Actor for Introducer {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            // A (re)started introducer knows no one: its state is volatile.
            Input::Start => {
                self.servers.clear();
                self.subscribers.clear();
            }
            Input::Message {
                from,
                msg: Message::Request { id, deadline, body },
            } => self.on_request(from, id, deadline, body, ctx),
            Input::Message { .. }
            | Input::Timer(_)
            | Input::Local { .. }
            | Input::Plaintext { .. }
            | Input::OutputDrained
            | Input::Cancel(_) => {}
        }
    }
}

fn reply(ctx: &mut Context<'_>, to: Addr, id: RequestId, body: Response) {
    ctx.send(to, Message::Response { id, body });
}

/// A map with a size limit: inserting into a full map evicts the entry inserted or
/// refreshed least recently.
struct Recent<K, V> {
    limit: usize,
    entries: BTreeMap<K, (u64, V)>,
    /// Insertion stamp -> key, oldest first.
    by_age: BTreeMap<u64, K>,
    next_stamp: u64,
}

impl<K: Ord + Copy, V> Recent<K, V> {
    fn new(limit: usize) -> Self {
        Recent {
            limit,
            entries: BTreeMap::new(),
            by_age: BTreeMap::new(),
            next_stamp: 0,
        }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|(_, v)| v)
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.by_age.clear();
    }

    /// Inserts or refreshes `key`; returns the key evicted to make room, if any.
    fn insert(&mut self, key: K, value: V) -> Option<K> {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        if let Some((old, _)) = self.entries.insert(key, (stamp, value)) {
            self.by_age.remove(&old);
            self.by_age.insert(stamp, key);
            return None;
        }
        self.by_age.insert(stamp, key);
        if self.entries.len() <= self.limit {
            return None;
        }
        let (_, oldest) = self.by_age.pop_first()?;
        self.entries.remove(&oldest);
        debug_assert_eq!(self.entries.len(), self.limit, "full, and no more");
        debug_assert_eq!(self.by_age.len(), self.entries.len(), "one age per entry");
        Some(oldest)
    }
}

#[cfg(test)]
mod tests;
