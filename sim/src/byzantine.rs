//! Byzantine peers: a storage server and a client that attack the grid from inside it, with
//! the membership any node has (they announce, subscribe and are announced like honest nodes)
//! and everything a peer can learn on the wire. Mixed into named scenarios and the chaos runs,
//! they show that no honest acknowledged upload is corrupted or lost because of them, and
//! that honest nodes' state stays bounded however long they keep at it.
//!
//! What they try, per the threat model in `SECURITY.md`:
//! - [`ByzantineServer`] claims every share it is offered and keeps none (writes go nowhere),
//!   claims to hold every share of any file, serves garbage, over-long or no blocks; takes the
//!   storage index of each upload it is offered and tries to write garbage into, close and
//!   abort that upload's shares on every honest server (with upload secrets it made up);
//!   announces itself with an absurd free space, replays other servers' old announcements,
//!   sends forged ones to the introducer and to clients directly, and floods subscriptions.
//! - [`ByzantineClient`] floods honest servers with tiny allocations under random storage
//!   indexes, endless reads, lease renewals until the end of time, and the vdrive with
//!   listings whose answers it asks to be kept forever; floods subscriptions and forged
//!   announcements.
//!
//! Both count what they tried in a shared [`Ledger`], and note there any *breach*: an honest
//! server accepting a write, close or abort of an upload that was not the attacker's.

use cairn_actors::protocol::{Announcement, LeaseSecret, UploadSecret, MAX_DATA_PER_MESSAGE};
use cairn_actors::vdrive::VdriveOp;
use cairn_actors::{
    Actor, Addr, Context, Input, Message, NodeId, NodeKey, Request, RequestId, Response, Service,
    ShareNum, StorageIndex, Time, TimerId,
};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How often a byzantine server repeats its announcement attacks and revisits its victims.
const SERVER_TICK: Duration = Duration::from_secs(2);
/// How often a byzantine client floods.
const CLIENT_TICK: Duration = Duration::from_secs(1);
/// A storage index learnt from an allocation is attacked this many times (at once, then at
/// each tick), while its upload is likely still being written.
const ATTACKS_PER_VICTIM: u32 = 3;
/// Share numbers attacked per storage index (the chaos encoding's N).
const SHARES_ATTACKED: u8 = 10;
/// What an attacker keeps of each kind: it is bounded too, so that the memory figures of a
/// long attack are the honest nodes'.
const KEPT: usize = 256;
const TICK: TimerId = TimerId(1);

/// What the byzantine peers of one run tried, and what got through.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Attack messages sent, by kind.
    pub attacks: BTreeMap<&'static str, u64>,
    /// Requests an honest node should have refused and did not.
    pub breaches: Vec<String>,
    /// The attackers' nodes: they know one another, and leave one another alone.
    pub colluders: BTreeSet<NodeId>,
}

/// The ledger the byzantine peers of one run share with whoever checks the run.
pub type SharedLedger = Arc<Mutex<Ledger>>;

fn with_ledger<T>(ledger: &SharedLedger, f: impl FnOnce(&mut Ledger) -> T) -> T {
    f(&mut ledger.lock().unwrap_or_else(PoisonError::into_inner))
}

/// What a byzantine peer does not know the answer to yet: the requests that must be refused.
struct Pending {
    next_id: u64,
    /// Request id -> what must be refused (oldest first, bounded).
    must_refuse: BTreeMap<RequestId, &'static str>,
    ledger: SharedLedger,
}

impl Pending {
    fn new(ledger: SharedLedger) -> Self {
        Pending {
            next_id: 1,
            must_refuse: BTreeMap::new(),
            ledger,
        }
    }

    /// Sends `body` to `to`, counted as `kind`; if `refused`, an `Ok` answer is a breach.
    fn send(
        &mut self,
        ctx: &mut Context<'_>,
        to: Addr,
        kind: &'static str,
        deadline: Time,
        body: Request,
        refused: bool,
    ) {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        if refused {
            if self.must_refuse.len() >= 16 * KEPT {
                self.must_refuse.pop_first();
            }
            self.must_refuse.insert(id, kind);
        }
        with_ledger(&self.ledger, |l| *l.attacks.entry(kind).or_default() += 1);
        ctx.send(to, Message::Request { id, deadline, body });
    }

    fn count(&self, kind: &'static str, n: u64) {
        with_ledger(&self.ledger, |l| *l.attacks.entry(kind).or_default() += n);
    }

    /// Checks an answer to one of the requests sent.
    fn answered(&mut self, from: Addr, id: RequestId, body: &Response) {
        let Some(kind) = self.must_refuse.remove(&id) else {
            return;
        };
        if matches!(body, Response::Ok) {
            let breach =
                format!("{from:?} accepted a {kind} with an upload secret not its uploader's");
            with_ledger(&self.ledger, |l| l.breaches.push(breach));
        }
    }
}

/// The servers the introducer announced (other than the colluders), the first announcement
/// heard of each (for replays), and the clients seen; each bounded.
struct Known {
    servers: BTreeMap<NodeId, Announcement>,
    clients: VecDeque<NodeId>,
    colluders: BTreeSet<NodeId>,
}

impl Known {
    /// Knowing nothing yet, but who the colluders of `ledger` are.
    fn new(ledger: &SharedLedger) -> Self {
        Known {
            servers: BTreeMap::new(),
            clients: VecDeque::new(),
            colluders: with_ledger(ledger, |l| l.colluders.clone()),
        }
    }

    /// Keeps what the introducer announced of the servers that are not colluders.
    fn heard(&mut self, list: Vec<Announcement>) {
        for a in list {
            let room = self.servers.len() < KEPT || self.servers.contains_key(&a.node);
            if room && !self.colluders.contains(&a.node) {
                self.servers.entry(a.node).or_insert(a);
            }
        }
    }

    fn saw_client(&mut self, client: NodeId) {
        if !self.clients.contains(&client) {
            if self.clients.len() >= KEPT {
                self.clients.pop_front();
            }
            self.clients.push_back(client);
        }
    }

    fn random_server(&self, ctx: &mut Context<'_>) -> Option<NodeId> {
        let n = self.servers.len();
        (n > 0).then(|| {
            *self
                .servers
                .keys()
                .nth(ctx.rng().gen_range(0..n))
                .expect("in range")
        })
    }

    /// An announcement in another server's name, signed with `key` (so it does not verify),
    /// pointing at `address`.
    fn forged(&self, key: &NodeKey, address: &str, ctx: &mut Context<'_>) -> Option<Announcement> {
        let victim = self.random_server(ctx)?;
        let mut forged = Announcement::new(key, address.to_string(), u64::MAX, u64::MAX);
        forged.node = victim;
        Some(forged)
    }
}

fn random_si(ctx: &mut Context<'_>) -> StorageIndex {
    StorageIndex(ctx.rng().gen())
}

fn garbage(ctx: &mut Context<'_>, len: usize) -> Vec<u8> {
    (0..len).map(|_| ctx.rng().gen()).collect()
}

/// A storage server that lies and attacks; see the module docs.
pub struct ByzantineServer {
    key: NodeKey,
    address: String,
    introducer: Addr,
    known: Known,
    /// Storage indexes of uploads it was offered, and how many more times to attack each.
    victims: VecDeque<(StorageIndex, u32)>,
    pending: Pending,
}

impl ByzantineServer {
    pub fn new(key: NodeKey, address: String, introducer: Addr, ledger: SharedLedger) -> Self {
        ByzantineServer {
            key,
            address,
            introducer,
            known: Known::new(&ledger),
            victims: VecDeque::new(),
            pending: Pending::new(ledger),
        }
    }

    fn tick(&mut self, ctx: &mut Context<'_>) {
        let deadline = ctx.now().after(SERVER_TICK);
        let me = Announcement::new(&self.key, self.address.clone(), u64::MAX, ctx.now().0);
        let to = self.introducer;
        self.pending.send(
            ctx,
            to,
            "announce absurd free space",
            deadline,
            Request::Announce(Box::new(me)),
            false,
        );
        for _ in 0..4 {
            self.pending.send(
                ctx,
                to,
                "subscription flood",
                deadline,
                Request::Subscribe,
                false,
            );
        }
        if let Some(victim) = self.known.random_server(ctx) {
            let stale = self.known.servers[&victim].clone();
            let body = Request::Announce(Box::new(stale.clone()));
            self.pending.send(
                ctx,
                to,
                "replayed stale announcement",
                deadline,
                body,
                false,
            );
            if let Some(forged) = self.known.forged(&self.key, &self.address, ctx) {
                let body = Request::Announce(Box::new(forged.clone()));
                self.pending
                    .send(ctx, to, "forged announcement", deadline, body, false);
                // And straight to the clients it has met, as if it were their introducer.
                for &client in &self.known.clients {
                    let list = vec![forged.clone(), stale.clone()];
                    ctx.send(
                        Addr::new(client, Service::Client),
                        Message::Announcements(list),
                    );
                }
                let clients = self.known.clients.len() as u64;
                self.pending
                    .count("announcements sent to a client", clients);
            }
        }
        let victims: Vec<StorageIndex> = self.victims.iter().map(|(si, _)| *si).collect();
        for si in victims {
            self.attack_upload(si, ctx);
        }
        self.victims.iter_mut().for_each(|(_, left)| *left -= 1);
        self.victims.retain(|(_, left)| *left > 0);
        ctx.set_timer(TICK, SERVER_TICK);
    }

    /// Tries to spoil the upload of `si` on every honest server: a garbage write, a close or
    /// an abort of each share, under a made-up upload secret.
    fn attack_upload(&mut self, si: StorageIndex, ctx: &mut Context<'_>) {
        let deadline = ctx.now().after(SERVER_TICK);
        let servers: Vec<NodeId> = self.known.servers.keys().copied().collect();
        for server in servers {
            for share in (0..SHARES_ATTACKED).map(ShareNum) {
                let upload = UploadSecret(ctx.rng().gen());
                // An `Ok` to a write or close is a breach; to an abort it is not (aborting
                // what is not incoming succeeds, as a retried abort must): what an abort
                // did shows on the disks, which the scenarios check.
                let (kind, body, refused) = match ctx.rng().gen_range(0..3) {
                    0 => {
                        let len = ctx.rng().gen_range(1..2048);
                        let data = garbage(ctx, len);
                        let offset = ctx.rng().gen_range(0..4096);
                        let write = Request::Write {
                            si,
                            share,
                            offset,
                            data,
                            upload,
                        };
                        ("write into another's upload", write, true)
                    }
                    1 => {
                        let close = Request::Close { si, share, upload };
                        ("close of another's upload", close, true)
                    }
                    _ => {
                        let abort = Request::Abort { si, share, upload };
                        ("abort of another's upload", abort, false)
                    }
                };
                self.pending
                    .send(ctx, Addr::storage(server), kind, deadline, body, refused);
            }
        }
    }

    fn serve(&mut self, from: Addr, request: Request, ctx: &mut Context<'_>) -> Option<Response> {
        Some(match request {
            Request::Allocate { si, shares, .. } => {
                self.known.saw_client(from.node);
                self.pending.count("false allocation", shares.len() as u64);
                if self.victims.len() >= KEPT {
                    self.victims.pop_front();
                }
                self.victims.push_back((si, ATTACKS_PER_VICTIM - 1));
                self.attack_upload(si, ctx);
                Response::Allocated {
                    already_have: Vec::new(),
                    allocated: shares,
                }
            }
            Request::Write { .. } | Request::Close { .. } | Request::Abort { .. } => {
                self.pending.count("write thrown away", 1);
                Response::Ok
            }
            Request::RenewLease { .. } | Request::AdviseCorrupt { .. } => Response::Ok,
            Request::List { .. } => {
                self.pending.count("false share list", 1);
                let size = ctx.rng().gen_range(1..=MAX_DATA_PER_MESSAGE);
                Response::Shares((0..SHARES_ATTACKED).map(|s| (ShareNum(s), size)).collect())
            }
            Request::Read { len, .. } => {
                let asked = len.min(MAX_DATA_PER_MESSAGE) as usize;
                match ctx.rng().gen_range(0..4) {
                    0 => {
                        self.pending.count("garbage block", 1);
                        Response::Data(garbage(ctx, asked))
                    }
                    1 => {
                        self.pending.count("over-long block", 1);
                        let len = (asked + 4096).min(MAX_DATA_PER_MESSAGE as usize);
                        Response::Data(garbage(ctx, len))
                    }
                    2 => {
                        self.pending.count("read never answered", 1);
                        return None;
                    }
                    _ => Response::Data(Vec::new()),
                }
            }
            Request::Announce(_)
            | Request::Subscribe
            | Request::Vdrive(_)
            | Request::DirRead { .. }
            | Request::DirWrite { .. } => {
                Response::Err(cairn_actors::protocol::RemoteError::Unsupported)
            }
        })
    }
}

impl Actor for ByzantineServer {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Start => self.tick(ctx),
            Input::Timer(TICK) => self.tick(ctx),
            Input::Message { from, msg } => match msg {
                Message::Announcements(list) if from == self.introducer => self.known.heard(list),
                Message::Request { id, body, .. } => {
                    if let Some(body) = self.serve(from, body, ctx) {
                        ctx.send(from, Message::Response { id, body });
                    }
                }
                Message::Response { id, body } => self.pending.answered(from, id, &body),
                Message::Announcements(_) => {}
            },
            _ => {}
        }
    }
}

/// A client that floods; see the module docs.
pub struct ByzantineClient {
    key: NodeKey,
    introducer: Addr,
    vdrive: Addr,
    known: Known,
    pending: Pending,
}

impl ByzantineClient {
    pub fn new(key: NodeKey, introducer: Addr, vdrive: Addr, ledger: SharedLedger) -> Self {
        ByzantineClient {
            key,
            introducer,
            vdrive,
            known: Known::new(&ledger),
            pending: Pending::new(ledger),
        }
    }

    fn tick(&mut self, ctx: &mut Context<'_>) {
        let soon = ctx.now().after(CLIENT_TICK);
        let forever = Time(u64::MAX);
        for _ in 0..2 {
            let to = self.introducer;
            self.pending.send(
                ctx,
                to,
                "subscription flood",
                soon,
                Request::Subscribe,
                false,
            );
        }
        if let Some(forged) = self.known.forged(&self.key, "byzantine-client", ctx) {
            let body = Request::Announce(Box::new(forged));
            self.pending.send(
                ctx,
                self.introducer,
                "forged announcement",
                soon,
                body,
                false,
            );
        }
        let list = Request::Vdrive(VdriveOp::List { path: "/".into() });
        self.pending.send(
            ctx,
            self.vdrive,
            "listing kept forever",
            forever,
            list,
            false,
        );
        let Some(server) = self.known.random_server(ctx) else {
            return ctx.set_timer(TICK, CLIENT_TICK);
        };
        let to = Addr::storage(server);
        let allocate = Request::Allocate {
            si: random_si(ctx),
            shares: (0..8).map(ShareNum).collect(),
            share_size: 1,
            lease: LeaseSecret(ctx.rng().gen()),
            upload: UploadSecret(ctx.rng().gen()),
        };
        self.pending
            .send(ctx, to, "tiny allocation flood", forever, allocate, false);
        let read = Request::Read {
            si: random_si(ctx),
            share: ShareNum(0),
            offset: ctx.rng().gen(),
            len: u64::MAX,
        };
        self.pending
            .send(ctx, to, "endless read", forever, read, false);
        let renew = Request::RenewLease {
            si: random_si(ctx),
            lease: LeaseSecret(ctx.rng().gen()),
            expires: forever,
        };
        self.pending.send(
            ctx,
            to,
            "lease until the end of time",
            forever,
            renew,
            false,
        );
        ctx.set_timer(TICK, CLIENT_TICK);
    }
}

impl Actor for ByzantineClient {
    fn handle(&mut self, input: Input, ctx: &mut Context<'_>) {
        match input {
            Input::Start | Input::Timer(TICK) => self.tick(ctx),
            Input::Message {
                from,
                msg: Message::Announcements(list),
            } if from == self.introducer => self.known.heard(list),
            Input::Message {
                from,
                msg: Message::Response { id, body },
            } => self.pending.answered(from, id, &body),
            _ => {}
        }
    }
}
