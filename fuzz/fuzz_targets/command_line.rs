//! Flags, environment and config file: any input parses to a command or a
//! clean error, never a panic. Input: arguments separated by NUL, then
//! after a 0x01 byte `NAME=value` environment lines, then after a second
//! 0x01 a config file's text (given with `--config-file`).
#![no_main]

use std::collections::HashMap;
use std::path::PathBuf;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\u{1}');
    let mut args: Vec<String> = parts
        .next()
        .unwrap_or_default()
        .split('\0')
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    let env: HashMap<String, String> = parts
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let file = parts.next().map(|yaml| {
        let path = PathBuf::from(format!(
            "/dev/shm/ferrocd-fuzz-config-{}.yaml",
            std::process::id()
        ));
        std::fs::write(&path, yaml).map(|()| path)
    });
    if let Some(Ok(path)) = &file {
        args.push(format!("--config-file={}", path.display()));
    }
    let _ = ferrocd::config::parse_command_line(&args, &|k| env.get(k).cloned());
    if let Some(Ok(path)) = file {
        let _ = std::fs::remove_file(path);
    }
});
