//! The proxy listener: hyper 1.x on a worker thread per core. Each worker is a current-thread
//! tokio runtime with its own `SO_REUSEPORT` socket on the shared port, so the kernel spreads
//! connections over the workers and a request is parsed, admitted, forwarded (over this
//! worker's upstream pool) and answered on one thread, with no cross-thread wake-up.

use std::{
    convert::Infallible,
    io,
    net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs},
    sync::Arc,
    thread::JoinHandle,
    time::Duration,
};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use crate::gateway::Gateway;

/// The bound sockets, one per worker, all on one port.
pub struct ProxyListeners {
    port: u16,
    sockets: Vec<StdListener>,
}

impl ProxyListeners {
    /// Binds `workers` sockets to `addr` (port 0 picks one free port for all of them).
    pub fn bind(addr: &str, workers: usize) -> io::Result<Self> {
        let mut target = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{addr} resolves to nothing"),
            )
        })?;
        let mut sockets = Vec::with_capacity(workers.max(1));
        for _ in 0..workers.max(1) {
            let socket = reuse_port_socket(target)?;
            // The first socket chose the port; the others join it.
            target.set_port(socket.local_addr()?.port());
            sockets.push(socket);
        }
        Ok(Self {
            port: target.port(),
            sockets,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

fn reuse_port_socket(addr: SocketAddr) -> io::Result<StdListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The running workers.
pub struct ProxyServer {
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl ProxyServer {
    /// Starts one worker thread per socket.
    pub fn start(
        listeners: ProxyListeners,
        gateway: Arc<Gateway>,
        grace: Duration,
    ) -> io::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let mut workers = Vec::new();
        for (index, socket) in listeners.sockets.into_iter().enumerate() {
            let (gateway, stopped) = (gateway.clone(), stopped.clone());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let worker = std::thread::Builder::new()
                .name(format!("proxy-worker-{index}"))
                .spawn(move || runtime.block_on(serve(socket, gateway, stopped, grace)))?;
            workers.push(worker);
        }
        Ok(Self { stop, workers })
    }

    /// Stops accepting, lets requests in flight finish within the grace period, and waits
    /// for the workers to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let workers = self.workers;
        let _ = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        })
        .await;
    }
}

/// One worker: accept, serve each connection with keep-alive, and on stop close idle
/// connections and wait (at most `grace`) for the busy ones.
async fn serve(
    socket: StdListener,
    gateway: Arc<Gateway>,
    mut stopped: watch::Receiver<bool>,
    grace: Duration,
) {
    let listener = match tokio::net::TcpListener::from_std(socket) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "proxy worker cannot use its socket");
            return;
        }
    };
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.keep_alive(true)
        .header_read_timeout(Duration::from_secs(30))
        .timer(hyper_util::rt::TokioTimer::new());
    // Access-log lines and usage records wait in this worker's buffers until they are full or
    // the next tick.
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (stream, peer) = tokio::select! {
            _ = tick.tick() => {
                gateway.access_log.flush_local();
                gateway.flush_metering();
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let service = service_fn(move |req| {
            let gateway = gateway.clone();
            async move { Ok::<_, Infallible>(super::handle(req, peer, &gateway).await) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "proxy connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("proxy requests still in flight after the shutdown grace period");
    }
    gateway.access_log.flush_local();
    gateway.flush_metering();
}
