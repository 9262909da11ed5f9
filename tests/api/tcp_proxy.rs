//! A TCP proxy between herald and PostgreSQL that a test can cut (every connection dropped, new
//! ones refused) and restore, standing for a database that stops and starts again without
//! touching the machine's shared server. It also counts the bytes sent to the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct TcpProxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    to_server: Arc<AtomicU64>,
    _accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`127.0.0.1:5432`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0_u64);
        let to_server = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn({
            let cut = Arc::clone(&cut);
            let generation = generation.clone();
            let to_server = Arc::clone(&to_server);
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut.load(Ordering::SeqCst) {
                        drop(client); // refused: closed at once
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    tokio::spawn(pipe(
                        client,
                        server,
                        generation.subscribe(),
                        Arc::clone(&to_server),
                    ));
                }
            }
        });
        Self {
            port,
            cut,
            generation,
            to_server,
            _accept: accept,
        }
    }

    /// Drops every open connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|generation| *generation += 1);
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Bytes forwarded from clients to the server so far.
    pub fn bytes_to_server(&self) -> u64 {
        self.to_server.load(Ordering::SeqCst)
    }
}

async fn pipe(
    mut client: TcpStream,
    mut server: TcpStream,
    mut generation: watch::Receiver<u64>,
    to_server: Arc<AtomicU64>,
) {
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let upstream = async {
        let mut buffer = vec![0_u8; 16 * 1024];
        loop {
            let count = client_read.read(&mut buffer).await.unwrap_or(0);
            if count == 0 {
                break;
            }
            to_server.fetch_add(count as u64, Ordering::SeqCst);
            if server_write.write_all(&buffer[..count]).await.is_err() {
                break;
            }
        }
    };
    let downstream = async {
        let mut buffer = vec![0_u8; 16 * 1024];
        loop {
            let count = server_read.read(&mut buffer).await.unwrap_or(0);
            if count == 0 || client_write.write_all(&buffer[..count]).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
        _ = generation.changed() => {}
    }
    // Dropping both sockets closes them: the connection is gone for herald and the server.
}
