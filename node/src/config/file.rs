//! `--config-file`: a YAML file with etcd's keys (the flag names). As in etcd,
//! when a config file is given, other flags and environment variables are ignored.

use super::flags::{check_value, FlagSpec, Source, Values};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
}

/// Loads the file into flag values. Keys are matched to flags by name; unknown
/// keys are logged and ignored (etcd ignores them too).
pub fn load(path: &Path, specs: &[FlagSpec]) -> Result<Values, ConfigFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: shown.clone(),
        source,
    })?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| ConfigFileError::Parse {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    let mut out = Values::default();
    let map = match doc {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return Ok(out),
        _ => {
            return Err(ConfigFileError::Parse {
                path: shown,
                message: "the top level must be a mapping of etcd configuration keys".into(),
            })
        }
    };
    for (k, v) in map {
        let Some(key) = k.as_str() else { continue };
        let Some(spec) = specs.iter().find(|s| s.name == key) else {
            tracing::warn!(key, "ignoring unknown key in config file");
            continue;
        };
        let value = match v {
            serde_yaml::Value::Null => continue,
            serde_yaml::Value::Bool(b) => b.to_string(),
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Sequence(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect::<Vec<_>>()
                .join(","),
            _ => {
                return Err(ConfigFileError::Parse {
                    path: shown,
                    message: format!("key {key:?} must be a scalar"),
                })
            }
        };
        if !check_value(spec, &value) {
            return Err(ConfigFileError::Parse {
                path: shown,
                message: format!("invalid value {value:?} for key {key:?}"),
            });
        }
        out.set(spec, value, Source::ConfigFile);
    }
    Ok(out)
}
