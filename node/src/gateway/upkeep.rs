//! Keeping files healthy: `POST /check?cap=CAP[&verify=true][&repair=true][&add_lease=true]`
//! checks a file (which servers hold which shares; with `verify`, every share proved, a full
//! read of each; with `add_lease`, the node's lease renewed at every server holding shares)
//! and, with `repair`, regenerates what is missing or bad and places it until the file is
//! as happy as the node's encoding asks, then checks again.

use super::{unexpected, ApiError, Gateway};
use crate::api;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use cairn_actors::checker::{CheckError, CheckOptions, CheckReport};
use cairn_actors::local::{LocalRequest, LocalResponse};
use cairn_actors::repairer::RepairError;
use cairn_actors::Service;
use cairn_codec::{Cap, VerifierCap};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub(super) struct CheckQuery {
    cap: String,
    #[serde(default)]
    verify: bool,
    #[serde(default)]
    repair: bool,
    #[serde(default)]
    add_lease: bool,
}

/// What a check does besides looking.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Actions {
    pub verify: bool,
    pub repair: bool,
    pub add_lease: bool,
}

pub(super) async fn check(
    State(g): State<Arc<Gateway>>,
    Query(q): Query<CheckQuery>,
) -> Result<Json<api::Checked>, ApiError> {
    let actions = Actions {
        verify: q.verify,
        repair: q.repair,
        add_lease: q.add_lease,
    };
    let what = match (actions.verify, actions.repair) {
        (true, true) => "verify and repair",
        (true, false) => "verify",
        (false, true) => "check and repair",
        (false, false) => "check",
    };
    let what = format!("{what} {}", super::cap_label(&q.cap));
    let kind = match actions.repair {
        true => super::metrics::Kind::Repair,
        false => super::metrics::Kind::Check,
    };
    let operation = g.metrics.start(kind, what);
    let checked = check_file(&g, &q.cap, actions).await;
    operation.end(checked.as_ref().map(|_| ()));
    checked.map(Json)
}

/// Checks the file `cap` names, and does `actions`.
pub(super) async fn check_file(
    g: &Gateway,
    cap: &str,
    actions: Actions,
) -> Result<api::Checked, ApiError> {
    let cap = match cap.parse::<Cap>() {
        Ok(Cap::Chk(cap)) => cap.verifier(),
        Ok(Cap::ChkVerifier(cap)) => cap,
        Ok(Cap::Lit(_)) => return Ok(api::Checked::literal(cap.to_owned())),
        Ok(Cap::Dir(_)) => {
            return Err(ApiError::bad_request(
                "a directory cap: `cairn deep-check` checks the files of a directory",
            ))
        }
        Err(e) => {
            let why = format!("{cap:?} is not a cap: {e}");
            return Err(ApiError::bad_request(why));
        }
    };
    let q = actions;
    let (_, happy) = g
        .encoding
        .ok_or_else(|| ApiError::bad_request("this node runs no client to check with"))?;
    let happy = happy.min(cap.n);
    let options = CheckOptions {
        verify: q.verify,
        add_lease: q.add_lease,
        ..CheckOptions::default()
    };
    let before = run_check(g, &cap, happy, options).await?;
    let needs_repair = !before.healthy || !before.bad_copies.is_empty();
    if !(q.repair && needs_repair && before.recoverable) {
        return Ok(checked(&cap, &before, None));
    }
    let request = LocalRequest::Repair {
        cap: cap.clone(),
        happy,
        options: CheckOptions::default(),
        distrusted: before.bad_copies.clone(),
    };
    let handle = g.node.request(Service::Client, request).await?;
    let repaired = match handle.response().await? {
        LocalResponse::Repaired(Ok(report)) => api::Repaired {
            shares_placed: report.repaired.len(),
            happiness_before: report.happiness_before,
            happiness_after: report.happiness_after,
            bytes_downloaded: report.bytes_downloaded,
            bytes_uploaded: report.bytes_uploaded,
            error: None,
        },
        LocalResponse::Repaired(Err(error)) => failed_repair(error),
        other => return Err(unexpected(&other)),
    };
    // What the repair left, as a check sees it (the copies found bad stay bad).
    let mut after = run_check(g, &cap, happy, CheckOptions::default()).await?;
    for (share, servers) in after.holders.iter_mut() {
        servers.retain(|s| !before.bad_copies.contains(&(*share, *s)));
    }
    after.holders.retain(|_, servers| !servers.is_empty());
    after.distinct_shares = after.holders.len();
    after.happiness = cairn_actors::placement::happiness(&after.holders);
    after.healthy = after.happiness >= happy;
    after.recoverable = after.distinct_shares >= cap.k;
    after.faults = before.faults.clone();
    after.leases_renewed = before.leases_renewed;
    Ok(checked(&cap, &after, Some(repaired)))
}

async fn run_check(
    g: &Gateway,
    cap: &VerifierCap,
    happy: usize,
    options: CheckOptions,
) -> Result<CheckReport, ApiError> {
    let request = LocalRequest::Check {
        cap: cap.clone(),
        happy,
        options,
    };
    let handle = g.node.request(Service::Client, request).await?;
    match handle.response().await? {
        LocalResponse::Checked(Ok(report)) => Ok(report),
        LocalResponse::Checked(Err(error @ CheckError::Invalid(_))) => {
            Err(ApiError::bad_request(error.to_string()))
        }
        LocalResponse::Checked(Err(error)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            error.to_string(),
        )),
        other => Err(unexpected(&other)),
    }
}

fn failed_repair(error: RepairError) -> api::Repaired {
    let placed = match &error {
        RepairError::NotHappy { repaired, .. } | RepairError::Deadline { repaired, .. } => {
            repaired.len()
        }
        _ => 0,
    };
    let traffic = error.traffic();
    api::Repaired {
        shares_placed: placed,
        happiness_before: 0,
        happiness_after: 0,
        bytes_downloaded: traffic.bytes_downloaded,
        bytes_uploaded: traffic.bytes_uploaded,
        error: Some(error.to_string()),
    }
}

fn checked(cap: &VerifierCap, report: &CheckReport, repair: Option<api::Repaired>) -> api::Checked {
    api::Checked {
        cap: Cap::ChkVerifier(cap.clone()).to_string(),
        literal: false,
        k: report.k,
        n: report.n,
        happy: report.happy,
        distinct_shares: report.distinct_shares,
        happiness: report.happiness,
        servers_asked: report.servers_asked,
        servers_answered: report.servers_answered,
        healthy: report.healthy,
        recoverable: report.recoverable,
        holders: report
            .holders
            .iter()
            .map(|(share, servers)| (share.0, servers.iter().map(|s| s.to_string()).collect()))
            .collect(),
        faults: report.faults.clone(),
        leases_renewed: report.leases_renewed,
        repair,
    }
}
