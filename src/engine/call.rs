//! Executing one scenario call: build the request from the user's session, exchange it
//! (following redirects, storing cookies), judge the response (status, checks, captures),
//! record the outcome once, and apply the step's effects (headers set, pool values pushed).

use std::time::Instant;

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::Value;

use super::check;
use super::exchange::{send_once, unix_now, Conns, Times};
use super::session::{RenderError, Session, Shared, POOL_CAPACITY};
use super::worker::Worker;
use crate::config::{Call, Expr, Needed, Part, Plan};
use crate::failure::Failure;
use crate::http::redirect::{self, Hop};
use crate::http::Exchange;

/// What a call works with: the user's connections, session and random numbers, and (open model)
/// the intended start its latency counts from.
pub(crate) struct Caller<'u, 'w> {
    pub worker: &'w Worker,
    pub plan: &'w Plan,
    pub conns: &'u mut Conns,
    pub session: &'u mut Session,
    pub rng: &'u mut SmallRng,
    pub intended: Option<Instant>,
}

/// Why the rest of a task does not run.
#[derive(Debug)]
pub(crate) enum Stop {
    /// A required step failed, a capture found nothing (later steps would use it), or a template
    /// could not be filled (then nothing was sent or counted): an abort, with its reason.
    Abort(String),
    /// A pool the step needs is empty or a variable it needs unset: skipped, not a failure.
    Skip(&'static str),
}

/// Runs one scenario request: its needs, the request built from the session, the exchange, the
/// judgement (status and checks: a failure is counted and ends the task only when the step is
/// `required`), the captures (taken from every response; one that finds nothing ends the
/// task), the outcome recorded once, and on success the step's effects.
pub(crate) async fn execute_call(caller: Caller<'_, '_>, call: &Call) -> Result<(), Stop> {
    let Caller { worker, plan, conns, session, rng, intended } = caller;
    let shared = Shared { pools: &worker.run.pools, plan };
    if let Some(unmet) = unmet_need(call, session, &shared) {
        return Err(Stop::Skip(unmet));
    }
    session.build(call, &shared, rng).map_err(|RenderError(reason)| Stop::Abort(reason))?;
    if let Some(at) = conns.to(call.addr, call.tls.as_ref()).reconnect_after() {
        crate::runtime::timer::sleep_until(at).await;
    }
    worker.stats.borrow_mut().start(call.endpoint);
    let times = Times::now(intended);
    let (exchange, completed_at, hop) = match fetch(conns, session, call, times.started).await {
        Ok(done) => done,
        Err(failure) => {
            times.fail(&mut worker.stats.borrow_mut(), call.endpoint, failure);
            // No response: nothing to capture from either.
            return end_task_if(call.required || !call.captures.is_empty(), failure);
        }
    };
    // Checks on response time see the service time; the stats the (open-model) latency.
    let elapsed = completed_at.saturating_duration_since(times.started);
    let latency_us = times.latency_us(completed_at);
    times.service(&mut worker.stats.borrow_mut(), call.endpoint, completed_at, 1);
    let (addr, tls) = destination(call, hop.as_ref());
    let kept = conns.to(addr, tls).kept().expect("keep was asked for");
    let failure = check::judge(session, call, exchange.status, elapsed, kept, &shared, rng);
    let captured = check::capture(session, call, exchange.status, kept);
    let payload = exchange.payload;
    match (failure, captured) {
        (None, Ok(())) => {
            worker.stats.borrow_mut().success(call.endpoint, latency_us, payload);
            apply_effects(session, call, &shared, rng);
            Ok(())
        }
        (None, Err(missing)) => {
            let failure = Failure::Check(missing);
            worker.stats.borrow_mut().failure(call.endpoint, latency_us, payload, failure, unix_now());
            end_task_if(true, failure)
        }
        (Some(failure), captured) => {
            worker.stats.borrow_mut().failure(call.endpoint, latency_us, payload, failure, unix_now());
            end_task_if(call.required || captured.is_err(), failure)
        }
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Abort(reason) => f.write_str(reason),
            Stop::Skip(unmet) => write!(f, "skipped: {unmet}"),
        }
    }
}

/// The first of the step's needs that is not met, if any.
fn unmet_need(call: &Call, session: &Session, shared: &Shared) -> Option<&'static str> {
    call.needs.iter().find_map(|need| {
        let met = match need.what {
            Needed::Pool(pool) => !shared.pools[pool].lock().unwrap_or_else(|e| e.into_inner()).is_empty(),
            Needed::Var(slot) => !session.vars[slot].is_null(),
        };
        (!met).then_some(need.unmet)
    })
}

/// Where a call's request goes: the call's own destination until a redirect moved it.
fn destination<'a>(call: &'a Call, hop: Option<&'a Hop>) -> (std::net::SocketAddr, Option<&'a crate::tls::Target>) {
    match hop {
        Some(hop) => (hop.addr, hop.tls.as_ref()),
        None => (call.addr, call.tls.as_ref()),
    }
}

/// Sends the session's request and follows redirects (at most `call.max_redirects`), storing
/// every response's cookies; all within the call's timeout. Returns the final exchange, when its
/// last byte arrived, and the redirect it came from (its connection holds the kept copy).
async fn fetch(
    conns: &mut Conns,
    session: &mut Session,
    call: &Call,
    started: Instant,
) -> Result<(Exchange, Instant, Option<Hop>), Failure> {
    let keep_body = !call.checks.is_empty() || !call.captures.is_empty();
    let deadline = started + call.timeout;
    let mut hop: Option<Hop> = None;
    let mut redirects = 0;
    loop {
        let (addr, tls) = destination(call, hop.as_ref());
        let conn = conns.to(addr, tls);
        conn.keep(true, keep_body);
        let sent = send_once(conn, &session.wbuf, call.is_head, call.idempotent, call.timeout);
        let exchange = match crate::runtime::timer::timeout_at(deadline, sent).await {
            Ok(Ok(exchange)) => exchange,
            Ok(Err(failure)) => {
                conn.close();
                return Err(failure);
            }
            Err(_) => {
                conn.close();
                return Err(Failure::timeout(call.timeout));
            }
        };
        let kept = conn.kept().expect("keep was asked for");
        let authority = hop.as_ref().map_or(call.authority.as_str(), |h| h.authority.as_str());
        session.cookies.store(kept, authority);
        let location = redirect::location(exchange.status, kept).filter(|_| redirects < call.max_redirects);
        let Some(location) = location else {
            return Ok((exchange, conn.received_at(), hop));
        };
        redirects += 1;
        let next = redirect::resolve(location, authority, call.addr, tls)?;
        let request = std::mem::take(&mut session.wbuf);
        redirect::rewrite(&request, exchange.status, &next, &session.cookies, &mut session.wbuf);
        hop = Some(next);
    }
}

fn end_task_if(end: bool, failure: Failure) -> Result<(), Stop> {
    if end {
        Err(Stop::Abort(failure.to_string()))
    } else {
        Ok(())
    }
}

/// Headers set and pool values pushed after a successful step.
fn apply_effects(session: &mut Session, call: &Call, shared: &Shared, rng: &mut SmallRng) {
    for (name, template) in &call.set_headers {
        let Ok(value) = session.render_string(template, shared, rng) else { continue };
        match session.headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(header) => header.1 = value,
            None => session.headers.push((name.clone(), value)),
        }
    }
    for (pool, template) in &call.push {
        let value = match template.parts.as_slice() {
            [Part::Expr(Expr::Var(slot), _)] => session.vars[*slot].clone(),
            _ => match session.render_string(template, shared, rng) {
                Ok(text) => Value::String(text),
                Err(_) => continue,
            },
        };
        let mut values = shared.pools[*pool].lock().unwrap_or_else(|e| e.into_inner());
        if values.len() < POOL_CAPACITY {
            values.push(value);
        } else {
            let victim = rng.gen_range(0..values.len());
            values[victim] = value;
        }
    }
}
