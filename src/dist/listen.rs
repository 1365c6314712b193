//! The master's listener: a thread accepts workers; each gets a thread of its own that runs the
//! handshake, then reads its frames, decoding and checking snapshots against the plan before
//! the coordinator sees them. A refused or broken link is logged and closed; the master goes on.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use crossbeam_channel::Sender;

use super::link::{self, Link, WorkerInfo};
use super::master::Options;
use super::wire::{self, Message};
use crate::config::Plan;
use crate::log::Level;
use crate::report::notice;

/// What the threads tell the coordinator.
pub(super) enum Event {
    Joined { id: usize, info: WorkerInfo, sender: link::Sender, peer: SocketAddr },
    Message { id: usize, message: Message },
    Gone { id: usize, reason: String },
}

/// Accepts workers on a thread; each admitted one gets a reader thread.
pub(super) fn accept(listener: TcpListener, events: Sender<Event>, plan: &Plan, options: &Options) {
    let (endpoints, max_us) = (plan.endpoints.len(), plan.histogram_max_us());
    let (secret, timeout) = (options.secret.clone(), options.heartbeat_timeout);
    let security = options.security.clone();
    let spawn = std::thread::Builder::new().name("swarmer-master-accept".into()).spawn(move || {
        for (id, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let (events, secret, security) = (events.clone(), secret.clone(), security.clone());
            let _ = std::thread::Builder::new()
                .name(format!("swarmer-master-link-{id}"))
                .spawn(move || serve(id, stream, (secret.as_deref(), &security), timeout, (endpoints, max_us), events));
        }
    });
    spawn.expect("a thread can be started");
}

/// One worker's link: the handshake, then every frame read, checked and passed on.
fn serve(
    id: usize,
    stream: std::net::TcpStream,
    (secret, security): (Option<&str>, &link::Security),
    timeout: Duration,
    (endpoints, max_us): (usize, u64),
    events: Sender<Event>,
) {
    let peer = stream.peer_addr().map_or_else(|_| "?".into(), |a| a.to_string());
    let mut link = match Link::secured(stream, timeout, security) {
        Ok(link) => link,
        Err(e) => return notice(Level::Warning, &format!("swarmer master: {peer}: {e}")),
    };
    let info = match link::admit(&mut link, secret) {
        Ok(info) => info,
        Err(reason) => {
            let hint = match security {
                link::Security::Server(_) if reason.contains("corrupt message") || reason.contains("malformed") => {
                    " (the link is TLS: start the worker with --master-ca-cert)"
                }
                _ => "",
            };
            return notice(Level::Warning, &format!("swarmer master: refused {peer}: {reason}{hint}"));
        }
    };
    let _ = events.send(Event::Joined { id, info, sender: link.sender.clone(), peer: link.peer });
    loop {
        let message = match link.recv() {
            Ok(Message::Stats(mut snapshot)) => match wire::fit(&mut snapshot, endpoints, max_us) {
                Ok(()) => Message::Stats(snapshot),
                Err(e) => break gone(&link, &events, id, format!("malformed stats ({e})")),
            },
            Ok(message) => message,
            Err(reason) => break gone(&link, &events, id, reason),
        };
        if events.send(Event::Message { id, message }).is_err() {
            break;
        }
    }
}

fn gone(link: &Link, events: &Sender<Event>, id: usize, reason: String) {
    link.sender.close();
    let _ = events.send(Event::Gone { id, reason });
}
