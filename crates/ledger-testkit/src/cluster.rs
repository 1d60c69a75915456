//! A PostgreSQL cluster that belongs to one test, so that the test may stop
//! and start it without disturbing anything else. It is the project's own
//! `scripts/ensure-postgres.sh`, pointed at a free loopback port and a data
//! directory the test names (under `target/`); the directory is reused
//! between runs (initdb runs only the first time). Databases on it are
//! [`crate::TestDatabase::create_on`] its [`Cluster::admin_url`].

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

use anyhow::{bail, Context};

/// A started cluster; stopped again when dropped.
pub struct Cluster {
    port: u16,
    data_dir: PathBuf,
    admin_url: String,
}

impl Cluster {
    /// Whether PostgreSQL server binaries (`initdb`, `pg_ctl`) are present:
    /// without them `ensure-postgres.sh` would have to install them, which a
    /// test must not do.
    pub fn server_binaries_present() -> bool {
        let debian = std::fs::read_dir("/usr/lib/postgresql")
            .map(|dirs| {
                dirs.flatten()
                    .any(|dir| dir.path().join("bin/initdb").exists())
            })
            .unwrap_or(false);
        debian
            || Command::new("sh")
                .args(["-c", "command -v initdb"])
                .output()
                .is_ok_and(|out| out.status.success())
    }

    /// Starts a cluster on a free loopback port, its data in `data_dir`. A
    /// cluster left running there by an earlier, interrupted run of the
    /// suite is stopped first.
    pub fn start(data_dir: PathBuf) -> anyhow::Result<Self> {
        let port = free_port()?;
        let admin_url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let cluster = Self {
            port,
            data_dir,
            admin_url,
        };
        cluster
            .stop()
            .context("Failed to stop a cluster left by an earlier run")?;
        cluster.resume()?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// `pg_ctl stop -m fast`: open sessions are terminated, new ones refused.
    pub fn stop(&self) -> anyhow::Result<()> {
        self.script(Some("stop")).map(drop)
    }

    /// Starts the stopped cluster again, on the same port.
    pub fn resume(&self) -> anyhow::Result<()> {
        let out = self.script(None)?;
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if url != self.admin_url {
            bail!(
                "ensure-postgres.sh printed {url:?}, expected {:?}",
                self.admin_url
            );
        }
        Ok(())
    }

    fn script(&self, argument: Option<&str>) -> anyhow::Result<Output> {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/ensure-postgres.sh"
        );
        let mut command = Command::new("bash");
        command
            .arg(script)
            .args(argument)
            .env("DATABASE_URL", &self.admin_url)
            .env("LEDGER_PG_PORT", self.port.to_string())
            .env("LEDGER_PGDATA", &self.data_dir);
        let out = command
            .output()
            .with_context(|| format!("Failed to run {script}"))?;
        if !out.status.success() {
            bail!(
                "{script} {} failed ({}): {}",
                argument.unwrap_or(""),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("warning: could not stop the test cluster: {err:#}");
        }
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("Failed to bind a free port")?;
    Ok(listener.local_addr()?.port())
}
