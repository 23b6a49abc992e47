//! A bare byte relay: one tokio task per connection on a current-thread runtime (what
//! `tenantgate serve --worker-threads 1` ran every session on before the relay threads).
//! Usage: tokio_relay LISTEN_ADDR UPSTREAM_ADDR. A benchmark tool: errors end the process.
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (listen, up) = (args[1].clone(), args[2].clone());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let l = TcpListener::bind(&listen).await?;
        loop {
            let (c, _) = l.accept().await?;
            let up = up.clone();
            tokio::spawn(async move {
                let Ok(b) = TcpStream::connect(&up).await else { return };
                let _ = (c.set_nodelay(true), b.set_nodelay(true));
                let (mut cr, mut cw) = c.into_split();
                let (mut br, mut bw) = b.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 16384];
                    while let Ok(n @ 1..) = cr.read(&mut buf).await {
                        if bw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = async move {
                    let mut buf = vec![0u8; 16384];
                    while let Ok(n @ 1..) = br.read(&mut buf).await {
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    })
}
