//! Logging with `tracing`: `--logger zap` writes JSON lines as etcd's zap
//! logger does; `--log-level` sets the level unless `RUST_LOG` is set.

use tracing_subscriber::EnvFilter;

pub fn init(level: &str, logger: &str, outputs: &str) {
    let level = match level {
        "panic" | "fatal" => "error",
        l => l,
    };
    // openraft narrates every step at info; its warnings and errors are what an operator needs.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},openraft=warn")));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let to_stdout = outputs == "stdout";
    let result = match (logger, to_stdout) {
        ("zap", false) => builder.json().with_writer(std::io::stderr).try_init(),
        ("zap", true) => builder.json().with_writer(std::io::stdout).try_init(),
        (_, false) => builder.with_writer(std::io::stderr).try_init(),
        (_, true) => builder.with_writer(std::io::stdout).try_init(),
    };
    // A subscriber already installed (tests) is fine.
    let _ = result;
}
