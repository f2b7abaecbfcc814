//! Test support: a private `redis-server` for one test. Not part of the API.
//!
//! Each [`RedisServer`] runs its own `redis-server` on a free loopback port with its own
//! temporary directory, and is killed (and its directory removed) when dropped: tests never
//! touch a shared instance.

use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a starting server may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A `redis-server` process owned by a test.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    append_only: bool,
}

impl RedisServer {
    /// Returns `true` if `redis-server` can be run.
    pub fn is_installed() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Starts a server on a free loopback port; `append_only` turns on the append-only file
    /// (fsync every second), so that a restarted server has everything it acknowledged.
    ///
    /// # Panics
    ///
    /// Panics if the server cannot be started: tests that call this need it.
    pub fn start(append_only: bool) -> RedisServer {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "busbar-redis-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the server's temporary directory");
        let mut last_error = None;
        // A free port can be taken between finding it and the server binding it: try others.
        for _ in 0..5 {
            let port = free_port().expect("find a free loopback port");
            let mut server = RedisServer { child: None, port, dir: dir.clone(), append_only };
            match server.launch() {
                Ok(()) => return server,
                Err(error) => last_error = Some(error),
            }
        }
        panic!("cannot start redis-server: {last_error:?}");
    }

    /// Returns the server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Returns the server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the server's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the server gracefully (`SIGTERM`: it writes its append-only file and exits) and
    /// waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: `kill` has no memory-safety preconditions; `pid` is our own child,
                // not yet reaped, so it cannot name another process.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (after [`stop`](Self::stop)).
    ///
    /// # Panics
    ///
    /// Panics if it cannot be started.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                // The port may linger for a moment after the old server exited.
                Err(error) if Instant::now() < deadline => {
                    eprintln!("redis-server did not restart yet ({error}); trying again");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => panic!("cannot restart redis-server: {error}"),
            }
        }
    }

    fn launch(&mut self) -> io::Result<()> {
        let log = fs::OpenOptions::new().create(true).append(true).open(self.dir.join("redis.log"))?;
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", if self.append_only { "yes" } else { "no" }])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!("redis-server exited at start: {status}")));
            }
            if self.answers() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other("redis-server did not answer in time"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Returns `true` if the server answers `PING` (and has loaded its data).
    fn answers(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else { return false };
        let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut connection).is_ok()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
