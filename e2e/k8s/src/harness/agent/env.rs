//! A container's environment: its `env` (downward API included) with
//! Kubernetes' `$(VAR)` expansion.

use super::*;

/// Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` is a
/// literal `$`, anything else stays as written.
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) if env.contains_key(&inner[..end]) => {
                    out.push_str(&env[&inner[..end]]);
                    rest = &inner[end + 1..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Agent {
    /// The environment of one container (pod-wide values, then its own).
    pub(super) fn container_env(p: &RunningPod, c: &Container) -> BTreeMap<String, String> {
        let mut env = p.env.clone();
        env.insert(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
        for e in c.env.clone().unwrap_or_default() {
            let from_object = p.object_env.get(&(c.name.clone(), e.name.clone()));
            let value = if let Some(v) = e.value {
                expand(&v, &env)
            } else if let Some(v) = from_object {
                v.clone()
            } else if let Some(field) = e.value_from.as_ref().and_then(|f| f.field_ref.as_ref()) {
                match field.field_path.as_str() {
                    "metadata.name" => p.name.clone(),
                    "metadata.namespace" => p.namespace.clone(),
                    "metadata.uid" => p.uid.clone(),
                    "status.podIP" => p.net.ip.to_string(),
                    "status.hostIP" => GATEWAY.to_string(),
                    "spec.nodeName" => NODE.to_string(),
                    _ => String::new(),
                }
            } else if e.value_from.as_ref().is_some_and(|f| f.field_ref.is_none()) {
                // An optional key that is missing: the variable is unset.
                continue;
            } else {
                String::new()
            };
            env.insert(e.name, value);
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes() {
        let env = BTreeMap::from([("POD_NAME".to_string(), "demo-0".to_string())]);
        assert_eq!(expand("--name=$(POD_NAME)", &env), "--name=demo-0");
        assert_eq!(
            expand("http://$(POD_NAME).demo:2380", &env),
            "http://demo-0.demo:2380"
        );
        assert_eq!(expand("$(MISSING)", &env), "$(MISSING)");
        assert_eq!(expand("$$(POD_NAME)", &env), "$(POD_NAME)");
        assert_eq!(expand("cost $5", &env), "cost $5");
    }
}
