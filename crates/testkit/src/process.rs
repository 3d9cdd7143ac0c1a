//! Child processes a test owns: started with their output in a log file,
//! killed (SIGKILL) and reaped on drop, also when the test fails (then the
//! log's tail is printed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a command-line tool, returning (exit code, stdout, stderr).
pub fn run(bin: &Path, args: &[String], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A long-running helper process (gateway, a member in a namespace) that
/// logs to a file; killed (SIGKILL) and reaped on drop.
pub struct Process {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    /// Starts `command` with `RUST_LOG=info`, stdout and stderr to `log`.
    pub fn spawn(mut command: Command, log: &Path) -> Process {
        let file = std::fs::File::create(log).expect("log file");
        let child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Process {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// Waits up to `limit` for the process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(Ok(Some(s))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            if std::thread::panicking() {
                let text = self.log_text();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!(
                    "--- {} ---\n{}",
                    self.log.display(),
                    lines[lines.len().saturating_sub(30)..].join("\n")
                );
            }
        }
    }
}
