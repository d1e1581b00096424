//! The local user's side of a request: a [`LocalHandle`] receives output, answers pulls, and
//! awaits the final response.

use super::{HostError, Node};
use cairn_actors::local::{LocalId, LocalResponse};
use cairn_actors::{Input, Service};
use std::io::{self, Read, Seek, SeekFrom, Write};
use tokio::sync::mpsc;

/// What the host passes from actors to the user of one request.
pub(super) enum ToUser {
    Output {
        from: Service,
        data: Vec<u8>,
    },
    Pull {
        from: Service,
        offset: u64,
        max: usize,
    },
    Reply(LocalResponse),
}

/// Something that happened to a local request.
#[derive(Debug)]
pub enum LocalEvent {
    /// Verified plaintext of a download, in order (already acknowledged to the actor).
    Output(Vec<u8>),
    /// The upload wants plaintext: answer with [`LocalHandle::answer`].
    Pull(Pull),
    /// The final response: the request is finished.
    Reply(LocalResponse),
}

/// An upload's request for up to `max` bytes of plaintext at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pull {
    /// Where the bytes start.
    pub offset: u64,
    /// How many bytes at most.
    pub max: usize,
    from: Service,
}

/// Where an upload's plaintext comes from: random access, since an uploader may re-read
/// earlier bytes.
pub trait PlaintextSource: Send {
    /// Up to `max` bytes at `offset`: fewer only at the end, none at or past it.
    fn read_at(&mut self, offset: u64, max: usize) -> io::Result<Vec<u8>>;
}

impl PlaintextSource for &[u8] {
    fn read_at(&mut self, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let end = start.saturating_add(max).min(self.len());
        Ok(self[start..end].to_vec())
    }
}

impl PlaintextSource for Vec<u8> {
    fn read_at(&mut self, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        self.as_slice().read_at(offset, max)
    }
}

/// A [`PlaintextSource`] over anything seekable (a file, say).
pub struct SeekSource<R>(pub R);

impl<R: Read + Seek + Send> PlaintextSource for SeekSource<R> {
    fn read_at(&mut self, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        self.0.seek(SeekFrom::Start(offset))?;
        let mut data = Vec::with_capacity(max.min(1 << 20));
        let limit = u64::try_from(max).unwrap_or(u64::MAX);
        (&mut self.0).take(limit).read_to_end(&mut data)?;
        Ok(data)
    }
}

/// A [`PlaintextSource`] from a callback `(offset, max) -> bytes`.
pub struct FnSource<F>(pub F);

impl<F> PlaintextSource for FnSource<F>
where
    F: FnMut(u64, usize) -> io::Result<Vec<u8>> + Send,
{
    fn read_at(&mut self, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        (self.0)(offset, max)
    }
}

/// One local request in progress, from [`Node::request`](super::Node::request). Dropping it
/// before its reply cancels the request (`Input::Cancel`: an upload aborts its shares).
pub struct LocalHandle {
    id: LocalId,
    node: Node,
    events: mpsc::UnboundedReceiver<ToUser>,
    /// The request has its reply, or its actor is gone: nothing to cancel.
    ended: bool,
}

impl LocalHandle {
    pub(super) fn new(id: LocalId, node: Node, events: mpsc::UnboundedReceiver<ToUser>) -> Self {
        LocalHandle {
            id,
            node,
            events,
            ended: false,
        }
    }

    /// The request's id on its node.
    pub fn id(&self) -> LocalId {
        self.id
    }

    /// The next thing that happens to the request. Output is acknowledged
    /// (`Input::OutputDrained`) as it is handed over. [`HostError::Abandoned`] if the actor
    /// handling the request is gone; after [`LocalEvent::Reply`] there is nothing more.
    pub async fn next_event(&mut self) -> Result<LocalEvent, HostError> {
        let Some(event) = self.events.recv().await else {
            self.ended = true;
            return Err(HostError::Abandoned(self.id));
        };
        Ok(match event {
            ToUser::Output { from, data } => {
                self.input(from, Input::OutputDrained).await;
                LocalEvent::Output(data)
            }
            ToUser::Pull { from, offset, max } => LocalEvent::Pull(Pull { offset, max, from }),
            ToUser::Reply(response) => {
                self.ended = true;
                LocalEvent::Reply(response)
            }
        })
    }

    /// Answers `pull` with `data` (fewer than `pull.max` bytes only at the end of the input).
    pub async fn answer(&self, pull: &Pull, data: Vec<u8>) {
        let input = Input::Plaintext {
            offset: pull.offset,
            data,
        };
        self.input(pull.from, input).await;
    }

    /// Runs an upload to its end, answering its pulls from `source`. If `source` fails, the
    /// upload is told its input ended (so it fails soon) and the error is returned. (Generic,
    /// so that the future is `Send` when the source is, as an HTTP handler's must be.)
    pub async fn upload<S: PlaintextSource + ?Sized>(
        mut self,
        source: &mut S,
    ) -> Result<LocalResponse, HostError> {
        loop {
            match self.next_event().await? {
                LocalEvent::Pull(pull) => match source.read_at(pull.offset, pull.max) {
                    Ok(data) => self.answer(&pull, data).await,
                    Err(error) => {
                        self.answer(&pull, Vec::new()).await;
                        return Err(HostError::Source(error));
                    }
                },
                LocalEvent::Output(_) => {}
                LocalEvent::Reply(response) => return Ok(response),
            }
        }
    }

    /// Runs a download to its end, writing its plaintext to `sink`. (Generic, so that the
    /// future is `Send` when the sink is.)
    pub async fn download<W: Write + ?Sized>(
        mut self,
        sink: &mut W,
    ) -> Result<LocalResponse, HostError> {
        loop {
            match self.next_event().await? {
                LocalEvent::Output(data) => sink.write_all(&data).map_err(HostError::Sink)?,
                LocalEvent::Pull(pull) => self.answer(&pull, Vec::new()).await,
                LocalEvent::Reply(response) => return Ok(response),
            }
        }
    }

    /// Awaits the final response of a request that moves no plaintext (status, vdrive):
    /// output is discarded and pulls are told the input is empty.
    pub async fn response(self) -> Result<LocalResponse, HostError> {
        self.download(&mut io::sink()).await
    }

    /// Hands `input` to the actor at `service`; if it is gone, the next event says so.
    async fn input(&self, service: Service, input: Input) {
        if let Err(error) = self.node.input(service, input).await {
            tracing::debug!(id = ?self.id, "local input undelivered: {error}");
        }
    }
}

impl Drop for LocalHandle {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // Outside a runtime (its shutdown) there is no one left to tell.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (node, id) = (self.node.clone(), self.id);
            runtime.spawn(async move { node.cancel(id).await });
        }
    }
}
