//! [`RealPostgres`]: Debian's PostgreSQL server (`apt-get install -y postgresql`) in its own
//! temporary folder, on a free loopback port, with a `medic` database. Not a simulation: for
//! the tests of the PostgreSQL store and of several `medic serve` nodes on one database
//! (issue 14), including its faults: [`RealPostgres::crash`] is `pg_ctl stop -m immediate`
//! (the server's processes quit without a shutdown checkpoint, as in a power cut), and
//! [`RealPostgres::restart`] starts it again on the same data and port, recovering from its
//! write-ahead log.
//!
//! What is guaranteed:
//! - [`RealPostgres::start`] returns once the server accepts connections and the database
//!   exists, or an error saying why not (a missing server is [`PostgresError::Missing`],
//!   whose message is the install command; a failed `initdb` or start carries its output);
//! - `initdb` refuses to run as root: as root, the cluster belongs to the `postgres` user the
//!   package creates, and every server program runs as that user;
//! - the server listens on 127.0.0.1 only, its socket is in the folder, and anyone on the
//!   machine may connect as `postgres` without a password (`-A trust`: loopback tests only);
//! - dropping it stops the server (immediately) and removes the folder.
//!
//! Starting blocks the calling thread (initdb takes a second or two).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What installs the server on Debian.
pub const INSTALL: &str = "apt-get install -y postgresql";

/// The database [`RealPostgres::start`] creates.
pub const DATABASE: &str = "medic";

/// How long the server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Starts tried when the free port found was taken by someone else in between.
const START_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error(
        "PostgreSQL's server programs are not installed (no /usr/lib/postgresql/*/bin/initdb): {INSTALL}"
    )]
    Missing,
    #[error("cannot {doing}: {source}")]
    Io {
        doing: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {output}")]
    Failed {
        program: &'static str,
        status: ExitStatus,
        output: String,
    },
    #[error("postgres exited ({status}) before it accepted connections: {log}")]
    Exited { status: ExitStatus, log: String },
    #[error("postgres did not accept connections within {within:?}: {log}")]
    NotReady { within: Duration, log: String },
    #[error("running as root, but there is no `postgres` user to own the cluster: {INSTALL}")]
    NoUser,
}

fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> PostgresError {
    let doing = doing.into();
    move |source| PostgresError::Io { doing, source }
}

/// A running PostgreSQL server; stopped, and its folder removed, when dropped.
pub struct RealPostgres {
    /// The postmaster, or `None` after a crash until the restart.
    child: Option<Child>,
    port: u16,
    bin: PathBuf,
    /// The user and group the server runs as, when this process is root.
    owner: Option<(u32, u32)>,
    folder: tempfile::TempDir,
}

impl Drop for RealPostgres {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.pg_ctl_stop();
        }
        if let Some(mut child) = self.child.take() {
            // pg_ctl waited for the server to quit; a kill only if it could not.
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl RealPostgres {
    /// A new cluster in a temporary folder, served on a free loopback port, with the
    /// [`DATABASE`] database.
    pub fn start() -> Result<RealPostgres, PostgresError> {
        let bin = server_programs()?;
        let owner = owner()?;
        let folder = tempfile::Builder::new()
            .prefix("medic-sandbox-postgres-")
            .tempdir()
            .map_err(io("make a temporary folder"))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(folder.path(), Some(uid), Some(gid))
                .map_err(io("give the folder to the postgres user"))?;
        }
        let mut server = RealPostgres {
            child: None,
            port: 0,
            bin,
            owner,
            folder,
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                // The cluster is thrown away with the folder: no need to sync its creation.
                "--no-sync".as_ref(),
            ],
        )?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            server.port = free_port()?;
            match server.launch() {
                Ok(()) => {
                    let port = server.port.to_string();
                    server.run(
                        "createdb",
                        &[
                            "-h".as_ref(),
                            "127.0.0.1".as_ref(),
                            "-p".as_ref(),
                            port.as_ref(),
                            "-U".as_ref(),
                            "postgres".as_ref(),
                            DATABASE.as_ref(),
                        ],
                    )?;
                    return Ok(server);
                }
                Err(PostgresError::Exited { status, log }) if log.contains("already in use") => {
                    last_error = Some(PostgresError::Exited { status, log });
                }
                Err(other) => return Err(other),
            }
        }
        Err(last_error.unwrap_or(PostgresError::NotReady {
            within: READY_WITHIN,
            log: String::new(),
        }))
    }

    /// `postgres://postgres@127.0.0.1:PORT/medic`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding the cluster (`data`), the socket and the server's log.
    pub fn folder(&self) -> &Path {
        self.folder.path()
    }

    /// What the server wrote to its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs SQL with `psql` and returns what it printed, unaligned and without headers (a
    /// tool for tests that look at the database behind Medic's back).
    pub fn psql(&self, sql: &str) -> Result<String, PostgresError> {
        let output = self
            .command("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", DATABASE])
            .args(["-p", &self.port.to_string()])
            .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-t", "-A", "-c", sql])
            .output()
            .map_err(io("run psql"))?;
        if !output.status.success() {
            return Err(PostgresError::Failed {
                program: "psql",
                status: output.status,
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_string())
    }

    /// Whether the server is running (not crashed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `pg_ctl stop -m immediate`: every server process quits at once, without a shutdown
    /// checkpoint; committed transactions survive in the write-ahead log.
    pub fn crash(&mut self) -> Result<(), PostgresError> {
        self.pg_ctl_stop()?;
        if let Some(mut child) = self.child.take() {
            child.wait().map_err(io("wait for postgres"))?;
        }
        Ok(())
    }

    /// Starts the server again on the same data and port (after [`RealPostgres::crash`]);
    /// it recovers from its write-ahead log before it accepts connections.
    pub fn restart(&mut self) -> Result<(), PostgresError> {
        if self.child.is_some() {
            self.crash()?;
        }
        self.launch()
    }

    fn data(&self) -> PathBuf {
        self.folder.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.folder.path().join("postgres.log")
    }

    /// A server program, as the cluster's owner, with a locale every machine has.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command
            .env("LC_ALL", "C.UTF-8")
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid).current_dir(self.folder.path());
        }
        command
    }

    /// Runs a program to completion; its output is the error when it fails.
    fn run(&self, program: &'static str, args: &[&std::ffi::OsStr]) -> Result<(), PostgresError> {
        let output = self
            .command(program)
            .args(args)
            .output()
            .map_err(io(format!("run {program}")))?;
        if output.status.success() {
            return Ok(());
        }
        Err(PostgresError::Failed {
            program,
            status: output.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }

    fn pg_ctl_stop(&self) -> Result<(), PostgresError> {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )
    }

    /// Starts the postmaster on `self.port` and waits until it accepts connections.
    fn launch(&mut self) -> Result<(), PostgresError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io("open postgres.log"))?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(self.log_path(), Some(uid), Some(gid))
                .map_err(io("give postgres.log to the postgres user"))?;
        }
        let data = self.data();
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.folder.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io("start postgres"))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().map_err(io("check on postgres"))?
            {
                self.child = None;
                return Err(PostgresError::Exited {
                    status,
                    log: self.log(),
                });
            }
            if self.accepts_connections() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(PostgresError::NotReady {
                    within: READY_WITHIN,
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `pg_isready`: the port is open and the server past its recovery.
    fn accepts_connections(&self) -> bool {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            return false;
        }
        let port = self.port.to_string();
        self.run(
            "pg_isready",
            &[
                "-h".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
            ],
        )
        .is_ok()
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn server_programs() -> Result<PathBuf, PostgresError> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| PostgresError::Missing)?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or(PostgresError::Missing)
}

/// As root, the `postgres` user's ids (from `/etc/passwd`); otherwise `None`, and the
/// server runs as this process's user.
fn owner() -> Result<Option<(u32, u32)>, PostgresError> {
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(io("read /proc/self/status"))?;
    let is_root = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    if !is_root {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(io("read /etc/passwd"))?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some("postgres")).then_some(())?;
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some(Some((uid, gid)))
        })
        .ok_or(PostgresError::NoUser)
}

fn free_port() -> Result<u16, PostgresError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("find a free loopback port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("read the free port"))?
        .port())
}
