//! A counting TCP proxy in front of a broker's listener: what a broker would count of new
//! connections (`KAFKA_COUNTED`, advertised by the broker, forwards to `KAFKA_COUNTED_BROKER`), so
//! every connection any client makes to that broker, bootstrap or advertised, is seen here.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The proxy; it stops when dropped.
pub struct CountingProxy {
    accepted: Arc<Mutex<Vec<Instant>>>,
    stop: std::sync::mpsc::Sender<()>,
    address: String,
}

impl CountingProxy {
    /// Listens on `listen` and forwards each connection to `target`. Connections are accepted, and
    /// timed, on a thread of their own: a busy async runtime would take them late and in bunches.
    pub async fn start(listen: &str, target: &str) -> CountingProxy {
        let listener = std::net::TcpListener::bind(listen)
            .unwrap_or_else(|e| panic!("the counting proxy cannot listen on {listen}: {e}"));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let seen = accepted.clone();
        let target = target.to_string();
        let runtime = tokio::runtime::Handle::current();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let at = Instant::now();
                if stop_rx.try_recv().is_ok() {
                    break;
                }
                let Ok(inbound) = inbound else { continue };
                seen.lock().unwrap().push(at);
                let target = target.clone();
                runtime.spawn(async move {
                    let _ = inbound.set_nonblocking(true);
                    let Ok(mut inbound) = tokio::net::TcpStream::from_std(inbound) else {
                        return;
                    };
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        CountingProxy {
            accepted,
            stop: stop_tx,
            address: listen.to_string(),
        }
    }

    /// Connections accepted so far.
    pub fn count(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }

    /// The most connections accepted within any one second (a sliding window over every accept).
    pub fn highest_per_second(&self) -> usize {
        self.highest_per_second_since(0)
    }

    /// The same, over the connections after the first `skip`.
    pub fn highest_per_second_since(&self, skip: usize) -> usize {
        let times: Vec<Instant> = self.accepted.lock().unwrap()[skip..].to_vec();
        let mut most = 0;
        let mut first = 0;
        for (i, t) in times.iter().enumerate() {
            while *t - times[first] >= Duration::from_secs(1) {
                first += 1;
            }
            most = most.max(i + 1 - first);
        }
        most
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        // The accepting thread stops at its next connection: make one.
        let _ = self.stop.send(());
        let _ = std::net::TcpStream::connect(&self.address);
    }
}
