//! The relay over real TCP sockets on the loopback, with a forwarder that passes PostgreSQL
//! framed messages through unchanged. What the gateway's rules do with the messages is
//! tested end to end (crates/tenantgate/tests); here: that bytes arrive whole and in order,
//! under backpressure, in the right session, and that every way of ending gives the sockets
//! and unsent bytes back.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use bytes::BytesMut;

use super::{Ended, Forwarder, FromClient, Job, Outcome, Relay, Ticket};
use crate::backend::ReaderState;
use crate::net::FLUSH_AT;

/// Passes whole frames through. Tag `X` terminates, `!` is a fault, `P` panics.
struct Pass;

impl Forwarder for Pass {
    type Fault = String;

    fn on_client(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> FromClient<String> {
        loop {
            if input.len() < 5 {
                return FromClient::Drained;
            }
            let len = u32::from_be_bytes([input[1], input[2], input[3], input[4]]) as usize + 1;
            if input.len() < len {
                return FromClient::Drained;
            }
            let f = input.split_to(len);
            match f[0] {
                b'X' => return FromClient::Terminate,
                b'!' => return FromClient::Fault("bad frame".into()),
                b'P' => panic!("a forwarder bug"),
                _ => out.extend_from_slice(&f),
            }
            if out.len() >= FLUSH_AT {
                return FromClient::Full;
            }
        }
    }

    fn on_backend(&mut self, m: &[u8], out: &mut BytesMut) {
        out.extend_from_slice(m);
    }
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// A connected pair: (the relay's end, the test's end).
fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (ours, _) = l.accept().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    peer.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    (ours, peer)
}

/// One session on `relay`: (ticket, the client's end, the backend's end).
fn session(relay: &Relay<Pass>, client_buf: &[u8]) -> (Ticket<Pass>, TcpStream, TcpStream) {
    let (client, client_peer) = pair();
    let (backend, backend_peer) = pair();
    let job = Job { client, client_buf: BytesMut::from(client_buf), backend, backend_state: ReaderState::new(), forwarder: Pass };
    let ticket = relay.submit(job).ok().unwrap();
    (ticket, client_peer, backend_peer)
}

fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).unwrap();
    v
}

/// What already reached `peer` (a session is over, so nothing more is on the way), followed
/// by what the relay handed back unsent.
fn delivered_then(peer: &mut TcpStream, unsent: &[u8]) -> Vec<u8> {
    peer.set_nonblocking(true).unwrap();
    let mut got = vec![0u8; 4096];
    let n = peer.read(&mut got).unwrap_or(0);
    got.truncate(n);
    got.extend_from_slice(unsent);
    got
}

fn outcome(mut t: Ticket<Pass>) -> Outcome<Pass> {
    t.settled();
    let rx = std::mem::replace(&mut t.outcome, tokio::sync::oneshot::channel().1);
    rx.blocking_recv().unwrap()
}

#[test]
fn forwards_both_ways_and_gives_the_sockets_back_on_stop() {
    let relay = Relay::<Pass>::start(1).unwrap();
    // A frame the session task had already read goes first.
    let early = frame(b'Q', b"early\0");
    let (ticket, mut c, mut b) = session(&relay, &early);
    assert_eq!(read_exact(&mut b, early.len()), early);
    let q = frame(b'Q', b"SELECT 1\0");
    c.write_all(&q).unwrap();
    assert_eq!(read_exact(&mut b, q.len()), q);
    let z = frame(b'Z', b"I");
    b.write_all(&z).unwrap();
    assert_eq!(read_exact(&mut c, z.len()), z);

    ticket.stop();
    let mut o = outcome(ticket);
    assert!(matches!(o.ended, Ended::Stopped), "{:?}", o.ended);
    assert_eq!(o.backend_state.transaction_status(), b'I');
    // Both sockets still work after coming back.
    o.client.write_all(b"after").unwrap();
    assert_eq!(read_exact(&mut c, 5), b"after");
    o.backend.write_all(b"after").unwrap();
    assert_eq!(read_exact(&mut b, 5), b"after");
}

#[test]
fn large_transfers_arrive_whole_and_in_order_under_backpressure() {
    let relay = Relay::<Pass>::start(1).unwrap();
    let (ticket, c, b) = session(&relay, b"");
    // 16 MiB each way, in messages of varied sizes, while each reader starts late, so both
    // directions fill their socket buffers and FLUSH_AT.
    let stream = |seed: u8, tag: u8| -> Vec<u8> {
        let mut v = Vec::new();
        let mut i = 0usize;
        while v.len() < 16 << 20 {
            let len = [0usize, 1, 100, 8191, 65_536, 200_000][i % 6];
            let body: Vec<u8> = (0..len).map(|k| (k as u8).wrapping_mul(31).wrapping_add(seed).wrapping_add(i as u8)).collect();
            v.extend(frame(tag, &body));
            i += 1;
        }
        v
    };
    let up = stream(1, b'd');
    let down = stream(2, b'D');
    let writer = |mut s: TcpStream, data: Vec<u8>| thread::spawn(move || s.write_all(&data).map(|_| s));
    let reader = |mut s: TcpStream, n: usize| {
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            let mut v = vec![0u8; n];
            s.read_exact(&mut v).map(|_| v)
        })
    };
    let (c2, b2) = (c.try_clone().unwrap(), b.try_clone().unwrap());
    let w1 = writer(c, up.clone());
    let w2 = writer(b, down.clone());
    let r1 = reader(b2, up.len());
    let r2 = reader(c2, down.len());
    // Keep the sockets open until the end: a closed peer would end the session itself.
    let (c, b) = (w1.join().unwrap(), w2.join().unwrap());
    let (got_up, got_down) = (r1.join().unwrap(), r2.join().unwrap());
    let (_c, _b) = (c.expect("client writes stalled"), b.expect("backend writes stalled"));
    assert!(got_up.expect("backend reads stalled") == up, "client → backend bytes differ");
    assert!(got_down.expect("client reads stalled") == down, "backend → client bytes differ");
    ticket.stop();
    assert!(matches!(outcome(ticket).ended, Ended::Stopped));
}

#[test]
fn sessions_never_see_each_others_bytes() {
    // Canaries: 48 sessions over 2 threads, each backend sends its own marker many times in
    // pieces; every client must get exactly its own marker stream.
    let relay = Relay::<Pass>::start(2).unwrap();
    let mut handles = Vec::new();
    for i in 0..48 {
        let (ticket, mut c, mut b) = session(&relay, b"");
        handles.push(thread::spawn(move || {
            let marker = format!("canary-tenant-{i:03}-");
            let msg = frame(b'D', marker.as_bytes());
            let q = frame(b'Q', marker.as_bytes());
            for _ in 0..200 {
                c.write_all(&q).unwrap();
                assert_eq!(read_exact(&mut b, q.len()), q, "session {i}: backend got another session's bytes");
                // Split the answer across writes so frames straddle reads.
                b.write_all(&msg[..3]).unwrap();
                b.write_all(&msg[3..]).unwrap();
                assert_eq!(read_exact(&mut c, msg.len()), msg, "session {i}: client got another session's bytes");
            }
            (ticket, c, b)
        }));
    }
    for h in handles {
        let (t, _c, _b) = h.join().unwrap();
        t.stop();
        assert!(matches!(outcome(t).ended, Ended::Stopped));
    }
}

#[test]
fn terminate_gives_back_what_preceded_it_unsent() {
    let relay = Relay::<Pass>::start(1).unwrap();
    let (ticket, mut c, mut b) = session(&relay, b"");
    let q = frame(b'Q', b"SELECT 1\0");
    let mut both = q.clone();
    both.extend(frame(b'X', b""));
    c.write_all(&both).unwrap();
    let o = outcome(ticket);
    assert!(matches!(o.ended, Ended::Terminated), "{:?}", o.ended);
    // What came before Terminate is either delivered or handed back, never lost or doubled.
    assert_eq!(delivered_then(&mut b, &o.to_backend), q);
}

#[test]
fn a_fault_or_a_half_message_ends_only_that_session() {
    let relay = Relay::<Pass>::start(1).unwrap();
    let (keep, mut kc, mut kb) = session(&relay, b"");

    let (t1, mut c1, _b1) = session(&relay, b"");
    c1.write_all(&frame(b'!', b"")).unwrap();
    assert!(matches!(outcome(t1).ended, Ended::Fault(ref f) if f == "bad frame"));

    let (t2, mut c2, _b2) = session(&relay, b"");
    c2.write_all(&frame(b'Q', b"cut short")[..6]).unwrap();
    c2.shutdown(Shutdown::Write).unwrap();
    assert!(matches!(outcome(t2).ended, Ended::ClientClosed { partial: true }));

    let (t3, c3, _b3) = session(&relay, b"");
    drop(c3);
    assert!(matches!(outcome(t3).ended, Ended::ClientClosed { partial: false }));

    // A forwarder that panics ends its own session only.
    let (t4, mut c4, _b4) = session(&relay, b"");
    c4.write_all(&frame(b'P', b"")).unwrap();
    assert!(matches!(outcome(t4).ended, Ended::Backend(_)));

    let q = frame(b'Q', b"still here\0");
    kc.write_all(&q).unwrap();
    assert_eq!(read_exact(&mut kb, q.len()), q);
    keep.stop();
    assert!(matches!(outcome(keep).ended, Ended::Stopped));
}

#[test]
fn backend_eof_hands_back_what_it_sent_last() {
    let relay = Relay::<Pass>::start(1).unwrap();
    let (ticket, mut c, mut b) = session(&relay, b"");
    let fatal = frame(b'E', b"SFATAL\0C57P01\0Mterminating connection\0\0");
    b.write_all(&fatal).unwrap();
    b.shutdown(Shutdown::Both).unwrap();
    let o = outcome(ticket);
    assert!(matches!(o.ended, Ended::Backend(crate::backend::PoolError::Closed)), "{:?}", o.ended);
    // The FATAL reached the client or came back unsent.
    assert_eq!(delivered_then(&mut c, &o.to_client), fatal);
}

#[test]
fn dropping_an_unsettled_ticket_stops_the_session() {
    let relay = Relay::<Pass>::start(1).unwrap();
    let (ticket, mut c, _b) = session(&relay, b"");
    drop(ticket);
    // The relay gives the sockets to a receiver that is gone, so they close.
    let mut buf = [0u8; 1];
    assert_eq!(c.read(&mut buf).unwrap(), 0);
}
