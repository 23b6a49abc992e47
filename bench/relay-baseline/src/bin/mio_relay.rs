//! A bare byte relay: one edge-triggered mio (epoll) loop for all connections, the shape of
//! PgBouncer's event loop and of tenantgate's relay threads. Writes that would block spin
//! (fine for pgbench's small messages; tenantgate's relay waits for writability instead).
//! Usage: mio_relay LISTEN_ADDR UPSTREAM_ADDR. A benchmark tool: errors end the process.
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let up: std::net::SocketAddr = args[2].parse().map_err(|_| ErrorKind::InvalidInput)?;
    let mut poll = Poll::new()?;
    let mut l = TcpListener::bind(args[1].parse().map_err(|_| ErrorKind::InvalidInput)?)?;
    poll.registry().register(&mut l, Token(0), Interest::READABLE)?;
    // Connection pairs: tokens 2k (client) and 2k + 1 (upstream).
    let mut conns: HashMap<usize, TcpStream> = HashMap::new();
    let mut next = 2usize;
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 16384];
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            let t = ev.token().0;
            if t == 0 {
                while let Ok((mut c, _)) = l.accept() {
                    let s = std::net::TcpStream::connect(up)?;
                    s.set_nonblocking(true)?;
                    let mut b = TcpStream::from_std(s);
                    c.set_nodelay(true)?;
                    b.set_nodelay(true)?;
                    poll.registry().register(&mut c, Token(next), Interest::READABLE)?;
                    poll.registry().register(&mut b, Token(next + 1), Interest::READABLE)?;
                    conns.insert(next, c);
                    conns.insert(next + 1, b);
                    next += 2;
                }
                continue;
            }
            let peer = t ^ 1;
            let mut close = false;
            loop {
                let Some(src) = conns.get_mut(&t) else { break };
                match src.read(&mut buf) {
                    Ok(0) => close = true,
                    Ok(n) => {
                        let Some(dst) = conns.get_mut(&peer) else { break };
                        let mut off = 0;
                        while off < n {
                            match dst.write(&buf[off..n]) {
                                Ok(k) => off += k,
                                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
                                Err(_) => {
                                    close = true;
                                    break;
                                }
                            }
                        }
                        if n < buf.len() && !close {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => close = true,
                }
                if close {
                    break;
                }
            }
            if close {
                conns.remove(&t);
                conns.remove(&peer);
            }
        }
    }
}
