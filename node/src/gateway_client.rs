//! The CLI's side of the gateway: HTTP requests to a running node (its URL read from the
//! node directory's `node.url`), failures turned into the node's own words.

use crate::api;
use crate::failure::{failure, Kind};
use crate::nodedir;
use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use std::io::Read;
use std::path::Path;
use std::time::Duration;
use ureq::http::Response;
use ureq::{Agent, Body, SendBody};

/// What an upload asks of the node besides its bytes.
pub struct Upload {
    /// Names the upload, for [`GatewayClient::cancel`].
    pub operation: String,
    /// Encoding settings for this upload (`shares_needed`, ...), over the node's.
    pub shares: Vec<(&'static str, String)>,
}

/// A running node's gateway.
pub struct GatewayClient {
    base: String,
    /// `Bearer TOKEN`: the node's API token, which every request shows.
    authorization: String,
    agent: Agent,
}

impl GatewayClient {
    /// The gateway of the node in `dir` (which must be running).
    pub fn for_node(dir: &Path) -> Result<GatewayClient> {
        let base = nodedir::node_url(dir)?;
        Ok(GatewayClient::new(base, nodedir::api_token(dir)?))
    }

    /// The gateway at `base` (`http://host:port`), with the node's API token.
    pub fn new(base: String, token: String) -> GatewayClient {
        let agent: Agent = Agent::config_builder()
            // The node's error statuses carry a message; read it rather than fail blind.
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .into();
        GatewayClient {
            base,
            authorization: format!("Bearer {token}"),
            agent,
        }
    }

    /// Uploads `body`, of `size` bytes if known (the node then computes the file's key as
    /// the bytes arrive); the node's answer.
    pub fn upload(
        &self,
        body: &mut dyn Read,
        size: Option<u64>,
        upload: &Upload,
    ) -> Result<api::Uploaded> {
        let mut request = self
            .agent
            .put(format!("{}/uri", self.base))
            .header("authorization", &self.authorization)
            .header("x-cairn-operation", &upload.operation);
        for (name, value) in &upload.shares {
            request = request.query(*name, value);
        }
        if let Some(size) = size {
            request = request.header("content-length", size.to_string());
        }
        let response = request
            .send(SendBody::from_reader(body))
            .map_err(|e| self.unreachable(e))?;
        json(response)
    }

    /// Cancels the upload named `operation`.
    pub fn cancel(&self, operation: &str) -> Result<api::Cancelled> {
        self.post_json("/operations/cancel", &[("id", operation)])
    }

    /// Starts a download; the response streams the file (its length in `Content-Length`).
    pub fn download(&self, cap: &str) -> Result<(u64, Body)> {
        let url = format!("{}/uri/{}", self.base, cap);
        let response = self
            .agent
            .get(url)
            .header("authorization", &self.authorization)
            .call()
            .map_err(|e| self.unreachable(e))?;
        let response = success(response)?;
        let size = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .context("the node sent no Content-Length for the file")?;
        Ok((size, response.into_body()))
    }

    /// `GET path?query` as JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T> {
        let mut request = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("authorization", &self.authorization);
        for (name, value) in query {
            request = request.query(*name, *value);
        }
        json(request.call().map_err(|e| self.unreachable(e))?)
    }

    /// `GET path` answered with text.
    pub fn get_text(&self, path: &str) -> Result<String> {
        let request = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("authorization", &self.authorization);
        let mut response = success(request.call().map_err(|e| self.unreachable(e))?)?;
        Ok(response.body_mut().read_to_string()?)
    }

    /// `POST path?query` with no body; succeeds or says why not.
    pub fn post(&self, path: &str, query: &[(&str, &str)]) -> Result<()> {
        success(self.post_request(path, query)?)?;
        Ok(())
    }

    /// `POST path?query` with no body, answered with JSON.
    pub fn post_json<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T> {
        json(self.post_request(path, query)?)
    }

    fn post_request(&self, path: &str, query: &[(&str, &str)]) -> Result<Response<Body>> {
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("authorization", &self.authorization);
        for (name, value) in query {
            request = request.query(*name, *value);
        }
        request.send_empty().map_err(|e| self.unreachable(e))
    }

    fn unreachable(&self, error: ureq::Error) -> anyhow::Error {
        failure(
            Kind::NodeDown,
            format!(
                "cannot reach the node's gateway at {}: {error} (is `cairn run` still running?)",
                self.base
            ),
        )
    }
}

/// The response if it succeeded; otherwise the node's message as the error.
fn success(mut response: Response<Body>) -> Result<Response<Body>> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let message = match serde_json::from_str::<api::Failure>(&text) {
        Ok(failure) => failure.error,
        Err(_) => format!("the node answered {status}: {}", text.trim()),
    };
    // The gateway's statuses say what kind of failure it was (see the README's endpoints).
    let kind = match status.as_u16() {
        400 | 413 => Some(Kind::BadInput),
        404 => Some(Kind::NotFound),
        410 | 503 | 504 => Some(Kind::GridShort),
        _ => None,
    };
    match kind {
        Some(kind) => Err(failure(kind, message)),
        None => bail!("{message}"),
    }
}

fn json<T: DeserializeOwned>(response: Response<Body>) -> Result<T> {
    let mut response = success(response)?;
    serde_json::from_reader(response.body_mut().as_reader())
        .context("the node's answer is not the JSON expected")
}
