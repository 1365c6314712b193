//! Executing one scenario call: build the request from the user's session, exchange it
//! (following redirects, storing cookies), judge the response (status, checks, captures),
//! record the outcome once, and apply the step's effects (headers set, pool values pushed).

use std::time::Instant;

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::Value;

use super::check;
use super::exchange::{send_once, timeout_failure, unix_now, Conns, Times};
use super::session::{RenderError, Session, Shared, POOL_CAPACITY};
use super::worker::Worker;
use crate::config::{Call, Expr, Part, Plan};
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

/// Runs one scenario request. `Err(reason)` ends the task: a required step failed, a capture
/// later steps need found nothing, or a template could not be filled (then no request was sent
/// or counted).
pub(crate) async fn execute_call(caller: Caller<'_, '_>, call: &Call) -> Result<(), String> {
    let Caller { worker, plan, conns, session, rng, intended } = caller;
    let shared = Shared { pools: &worker.run.pools, plan };
    session.build(call, &shared, rng).map_err(|RenderError(reason)| reason)?;
    if let Some(at) = conns.to(call.addr, call.tls.as_ref()).reconnect_after() {
        monoio::time::sleep_until(monoio::time::Instant::from_std(at)).await;
    }
    worker.stats.borrow_mut().start(call.endpoint);
    let times = Times::now(intended);
    let (exchange, completed_at, hop) = match fetch(conns, session, call, times.started).await {
        Ok(done) => done,
        Err(failure) => {
            times.fail(&mut worker.stats.borrow_mut(), call.endpoint, failure);
            return abort_if(call.required, failure);
        }
    };
    // Checks on response time see the service time; the stats the (open-model) latency.
    let elapsed = completed_at.saturating_duration_since(times.started);
    let latency_us = times.latency_us(completed_at);
    times.service(&mut worker.stats.borrow_mut(), call.endpoint, completed_at);
    let (addr, tls) = destination(call, hop.as_ref());
    let kept = conns.to(addr, tls).kept().expect("keep was asked for");
    let verdict = match rejected(call, exchange.status) {
        Some(failure) => Err(failure),
        None => check::evaluate(session, call, exchange.status, elapsed, kept, &shared, rng).map_err(Failure::Check),
    };
    match verdict {
        Ok(()) => {
            worker.stats.borrow_mut().success(call.endpoint, latency_us, exchange.payload);
            apply_effects(session, call, &shared, rng);
            Ok(())
        }
        Err(failure) => {
            worker.stats.borrow_mut().failure(call.endpoint, latency_us, exchange.payload, failure, unix_now());
            abort_if(call.required || !call.captures.is_empty(), failure)
        }
    }
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
    let deadline = monoio::time::Instant::from_std(started + call.timeout);
    let mut hop: Option<Hop> = None;
    let mut redirects = 0;
    loop {
        let (addr, tls) = destination(call, hop.as_ref());
        let conn = conns.to(addr, tls);
        conn.keep(true, keep_body);
        let sent = send_once(conn, &session.wbuf, call.is_head, call.idempotent, call.timeout);
        let exchange = match monoio::time::timeout_at(deadline, sent).await {
            Ok(Ok(exchange)) => exchange,
            Ok(Err(failure)) => {
                conn.close();
                return Err(failure);
            }
            Err(_) => {
                conn.close();
                return Err(timeout_failure(call.timeout));
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

/// The failure a final status makes: outside the step's accepted statuses, or 400 and above.
fn rejected(call: &Call, status: u16) -> Option<Failure> {
    match &call.accept {
        Some((statuses, message)) => (!statuses.contains(&status)).then_some(Failure::Check(message)),
        None => (status >= 400).then_some(Failure::Status(status)),
    }
}

fn abort_if(abort: bool, failure: Failure) -> Result<(), String> {
    if abort {
        Err(failure.to_string())
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
