//! `ledger serve` as a child process: started on a free loopback port,
//! killed with SIGKILL on request, and always killed when dropped.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a start may take (migrations included) before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Log lines kept for the message of a failing test.
const LOG_TAIL_LINES: usize = 200;

/// A running `ledger serve`.
pub struct LedgerProcess {
    child: Child,
    address: String,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl LedgerProcess {
    /// Starts `binary` (the `ledger` binary) against `database_url` on
    /// `127.0.0.1:0`, with `env` on top of the suite's defaults, and waits
    /// until it listens.
    pub fn start(binary: &str, database_url: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("LEDGER_LISTEN_ADDR", "127.0.0.1:0")
            .env("LEDGER_LOG_FORMAT", "json")
            .env("LEDGER_WORKERS", "2")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("Failed to spawn the ledger binary");
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_TAIL_LINES)));
        let (address_tx, address_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        spawn_reader(stdout, Arc::clone(&log), Some(address_tx));
        spawn_reader(stderr, Arc::clone(&log), None);

        let started = Instant::now();
        let address = loop {
            match address_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(address) => break address,
                Err(mpsc::RecvTimeoutError::Timeout) if started.elapsed() < START_TIMEOUT => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "ledger serve exited with {status} before listening:\n{}",
                            tail(&log)
                        );
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "ledger serve did not listen within {START_TIMEOUT:?}:\n{}",
                        tail(&log)
                    );
                }
            }
        };
        Self {
            child,
            address,
            log,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The operating-system process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no shutdown hook, no draining, in-flight requests cut off.
    pub fn kill9(&mut self) {
        // Child::kill sends SIGKILL on Unix.
        self.child.kill().expect("Failed to SIGKILL the ledger");
        self.child.wait().expect("Failed to reap the ledger");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident memory (`VmRSS` in /proc/<pid>/status), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("Failed to read /proc/<pid>/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// The last log lines (stdout and stderr), for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// Log lines that contain `needle`.
    pub fn log_lines_containing(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .map(|log| log.iter().filter(|l| l.contains(needle)).cloned().collect())
            .unwrap_or_default()
    }
}

impl LedgerProcess {
    /// Kills the process if it still runs, without panicking: for drops.
    pub(crate) fn shut_down(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for LedgerProcess {
    fn drop(&mut self) {
        // Never leave a server behind, whatever path the test took.
        self.shut_down();
    }
}

/// Reads a pipe line by line until it closes (the process died), keeping a
/// tail of the lines, and reports the address from the "listening on" line.
fn spawn_reader(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<VecDeque<String>>>,
    address_tx: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let mut address_tx = address_tx;
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(address) = listening_address(&line) {
                if let Some(tx) = address_tx.take() {
                    let _ = tx.send(address);
                }
            }
            if let Ok(mut log) = log.lock() {
                if log.len() == LOG_TAIL_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        }
    });
}

/// `http://127.0.0.1:40257` out of `… listening on http://127.0.0.1:40257 (API docs …`.
fn listening_address(line: &str) -> Option<String> {
    let start = line.find("listening on http://")? + "listening on ".len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

fn tail(log: &Mutex<VecDeque<String>>) -> String {
    log.lock()
        .map(|log| log.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}
