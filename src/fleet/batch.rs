//! Many hosts: at most `parallel` at once, and the rolling restart in batches.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::answer::HostResult;
use super::ssh::run_one;
use super::{Action, Host};
use crate::component::Component;
use crate::error::exit;
use crate::systemd::Scope;

/// Run `action` on every host, at most `parallel` at once, each within `deadline`; results
/// in the order the hosts were given.
pub fn run_all(
    hosts: &[Host],
    action: Action,
    scope: Scope,
    parallel: usize,
    deadline: Duration,
) -> Vec<HostResult> {
    let next = Arc::new(Mutex::new(0usize));
    let results: Arc<Mutex<Vec<Option<HostResult>>>> =
        Arc::new(Mutex::new(vec![None; hosts.len()]));
    let hosts: Arc<Vec<Host>> = Arc::new(hosts.to_vec());
    let workers: Vec<_> = (0..parallel.clamp(1, hosts.len().max(1)))
        .map(|_| {
            let (next, results, hosts) = (next.clone(), results.clone(), hosts.clone());
            let action = action.clone();
            std::thread::spawn(move || loop {
                let i = {
                    let mut n = next
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(host) = hosts.get(i) else {
                    return;
                };
                let r = run_one(host, &action, scope, deadline);
                if let Some(slot) = results
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_mut(i)
                {
                    *slot = Some(r);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let results = std::mem::take(
        &mut *results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    results
        .into_iter()
        .zip(hosts.iter())
        .map(|(r, h)| {
            r.unwrap_or_else(|| HostResult {
                host: h.spec.clone(),
                ok: false,
                exit_code: exit::FAILURE,
                error: Some("not run".into()),
                status: None,
                said: String::new(),
            })
        })
        .collect()
}

/// A rolling restart: `serial` hosts at a time. Each batch's `restart` returns only once
/// that host serves again (its supervisor ready, its probes passing), so the next batch
/// starts only then. Within a batch, at most `parallel` ssh sessions are open at once, as
/// for every other fleet command (`--parallel` is what bounds connections, `--serial` how
/// much of the fleet may be down). Stops at the first batch with a failure; returns the
/// results so far and the hosts that were not restarted.
pub fn rolling_restart(
    hosts: &[Host],
    component: Option<Component>,
    scope: Scope,
    (serial, parallel): (usize, usize),
    deadline: Duration,
) -> (Vec<HostResult>, Vec<String>) {
    in_batches(hosts, serial, |batch| {
        run_all(batch, Action::Restart(component), scope, parallel, deadline)
    })
}

/// Run `batch` on `serial` hosts at a time until a batch has a failure: the results so far,
/// and the hosts of the batches not run. The last batch may be partial.
pub fn in_batches(
    hosts: &[Host],
    serial: usize,
    mut batch: impl FnMut(&[Host]) -> Vec<HostResult>,
) -> (Vec<HostResult>, Vec<String>) {
    let mut done = Vec::new();
    let mut rest = hosts;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(serial.clamp(1, rest.len()));
        let results = batch(now);
        let failed = results.iter().any(|r| !r.ok);
        done.extend(results);
        if failed {
            return (done, later.iter().map(|h| h.spec.clone()).collect());
        }
        rest = later;
    }
    (done, Vec::new())
}
