//! A `nats-server` child process on a free loopback port, for tests, benchmarks and
//! laptops: the binary is Debian's (`apt-get install nats-server`), found on `PATH` or in
//! `/usr/sbin`. Stopped (killed and reaped) on drop.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server`.
pub struct LocalServer {
    child: Child,
    port: u16,
    args: Vec<String>,
    binary: PathBuf,
}

/// Why no server could be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalServerError {
    /// The binary is not installed.
    #[error("nats-server is not installed (Debian: apt-get install nats-server)")]
    NotInstalled,
    /// It did not start or did not listen in time.
    #[error("nats-server did not start: {0}")]
    Start(String),
}

/// The `nats-server` binary, if installed.
pub fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

/// For tests: a server, or `None` with a notice on stderr (written past the test harness's
/// capture, so a skip is never silent) when `nats-server` is not installed. With
/// `QORCH_REQUIRE_NATS` set (`.ci/run` sets it where it installed the server), a missing
/// server is a failure instead.
///
/// # Panics
///
/// If the server cannot start, or is missing while required.
pub fn start_or_skip(args: &[&str], test: &str) -> Option<LocalServer> {
    match LocalServer::start(args) {
        Ok(s) => Some(s),
        Err(LocalServerError::NotInstalled) if std::env::var_os("QORCH_REQUIRE_NATS").is_none() => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: nats-server is not installed (apt-get install nats-server)"
            );
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

impl LocalServer {
    /// Starts a server on 127.0.0.1 with extra `args` (for instance `--user u --pass p`).
    ///
    /// # Errors
    ///
    /// [`LocalServerError::NotInstalled`] or [`LocalServerError::Start`].
    pub fn start(args: &[&str]) -> Result<LocalServer, LocalServerError> {
        let binary = find_binary().ok_or(LocalServerError::NotInstalled)?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| LocalServerError::Start(e.to_string()))?
            .port();
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let child = spawn(&binary, port, &args)?;
        let mut s = LocalServer {
            child,
            port,
            args,
            binary,
        };
        s.wait_listening()?;
        Ok(s)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it (as a crash would) and starts it again on the same port, after `down`.
    ///
    /// # Errors
    ///
    /// [`LocalServerError::Start`] if it does not come back.
    pub fn restart(&mut self, down: Duration) -> Result<(), LocalServerError> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        // The port can stay busy for a moment after the kill: try again a few times.
        let mut last = None;
        for _ in 0..20 {
            self.child = spawn(&self.binary, self.port, &self.args)?;
            match self.wait_listening() {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last.unwrap_or_else(|| LocalServerError::Start("did not restart".into())))
    }

    fn wait_listening(&mut self) -> Result<(), LocalServerError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(LocalServerError::Start(format!("exited with {status}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(LocalServerError::Start("not listening after 10 s".into()))
    }
}

fn spawn(binary: &PathBuf, port: u16, args: &[String]) -> Result<Child, LocalServerError> {
    Command::new(binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| LocalServerError::Start(e.to_string()))
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
