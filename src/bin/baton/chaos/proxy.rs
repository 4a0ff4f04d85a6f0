//! A TCP proxy between the workers and Redis that can blackhole traffic (a partition:
//! connections stay open, nothing passes), delay it, or cut every connection at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// `delay_ms` value meaning "forward nothing".
const BLACKHOLE: u64 = u64::MAX;

struct State {
    /// 0: pass; [`BLACKHOLE`]: swallow; otherwise hold each chunk this long.
    delay_ms: AtomicU64,
    /// Cancelled to cut every connection open now; replaced by a fresh one.
    cut: Mutex<CancellationToken>,
}

/// The proxy; dropped, it stops accepting and closes every connection.
pub struct Proxy {
    port: u16,
    state: Arc<State>,
    stop: CancellationToken,
}

impl Proxy {
    /// Listens on a free loopback port, forwarding to `upstream`.
    pub async fn start(upstream: u16) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(State {
            delay_ms: AtomicU64::new(0),
            cut: Mutex::new(CancellationToken::new()),
        });
        let stop = CancellationToken::new();
        let (st, halt) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    _ = halt.cancelled() => return,
                    a = listener.accept() => match a { Ok((c, _)) => c, Err(_) => continue },
                };
                let cut = st.cut.lock().unwrap().clone();
                let (st, halt) = (st.clone(), halt.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        _ = pump(cr, sw, st.clone()) => {}
                        _ = pump(sr, cw, st) => {}
                        _ = cut.cancelled() => {}
                        _ = halt.cancelled() => {}
                    }
                });
            }
        });
        Ok(Proxy { port, state, stop })
    }

    /// Where clients connect.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Forward normally.
    pub fn pass(&self) {
        self.state.delay_ms.store(0, Ordering::SeqCst);
    }

    /// Forward nothing and leave connections open (bytes sent meanwhile are lost).
    pub fn blackhole(&self) {
        self.state.delay_ms.store(BLACKHOLE, Ordering::SeqCst);
    }

    /// Hold every chunk `d` before forwarding it.
    pub fn delay(&self, d: Duration) {
        self.state
            .delay_ms
            .store(d.as_millis().max(1) as u64, Ordering::SeqCst);
    }

    /// Close every connection open now (new ones are accepted).
    pub fn cut_all(&self) {
        let mut cut = self.state.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn pump(mut r: OwnedReadHalf, mut w: OwnedWriteHalf, st: Arc<State>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match st.delay_ms.load(Ordering::SeqCst) {
            0 => {}
            BLACKHOLE => continue,
            ms => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
