//! Service templates, expanded per task on the node as Swarm does: `{{.Service.Name}}`,
//! `{{.Task.Slot}}`, `{{.Node.Hostname}}` and the rest of Swarm's placeholders, in a
//! container's hostname, environment values and mounts.
//!
//! This is the small part of Go's `text/template` that Swarm's placeholders need: text,
//! `{{.Field.Path}}` (with `{{-`/`-}}` trimming), a label by key (`{{.Service.Labels.key}}` or
//! `{{index .Service.Labels "key"}}`), and nothing else. Anything else is an error that names the
//! template, so a container never starts with literal braces.

use std::collections::BTreeMap;

use swarm_model::ContainerSpec;
use swarm_model::Task;

/// What a template may read: Swarm's fields and nothing more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateContext {
    pub service_id: String,
    pub service_name: String,
    pub service_labels: BTreeMap<String, String>,
    pub node_id: String,
    pub node_hostname: String,
    pub node_os: String,
    pub node_architecture: String,
    pub task_id: String,
    /// `service.slot.id`, or `service.node.id` for a task without a slot.
    pub task_name: String,
    /// The slot, or the node ID for a task without a slot (global services).
    pub task_slot: String,
}

/// Why a template could not be expanded; the message names the template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template:?}: {problem}")]
pub struct TemplateError {
    pub template: String,
    pub problem: String,
}

impl TemplateContext {
    /// What a template of `task` sees on this node (`node_id`, `hostname`, this platform).
    pub fn for_task(task: &Task, node_id: &str, hostname: &str) -> Self {
        let annotations = task.service_annotations.clone().unwrap_or_default();
        TemplateContext {
            service_id: task.service_id.clone(),
            service_labels: annotations.labels.into_iter().collect(),
            node_id: node_id.to_string(),
            node_hostname: hostname.to_string(),
            node_os: swarm_protocol::host::os().to_string(),
            node_architecture: swarm_protocol::host::architecture().to_string(),
            task_id: task.id.clone(),
            task_name: crate::exec::task_name(task),
            task_slot: if task.slot != 0 {
                task.slot.to_string()
            } else {
                node_id.to_string()
            },
            service_name: annotations.name,
        }
    }

    /// `template` with every action replaced by its value.
    pub fn expand(&self, template: &str) -> Result<String, TemplateError> {
        let fail = |problem: String| TemplateError {
            template: template.to_string(),
            problem,
        };
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find("{{") {
            let (text, after) = rest.split_at(open);
            let after = &after[2..];
            let close = after
                .find("}}")
                .ok_or_else(|| fail("unclosed action: `{{` without `}}`".to_string()))?;
            let mut action = &after[..close];
            let mut next = &after[close + 2..];
            let mut text = text;
            // `{{- ` trims the whitespace before, ` -}}` the whitespace after (Go's rule: the
            // marker must be followed or preceded by a space).
            if let Some(a) = action.strip_prefix("- ") {
                text = text.trim_end();
                action = a;
            }
            if let Some(a) = action.strip_suffix(" -") {
                next = next.trim_start();
                action = a;
            }
            out.push_str(text);
            out.push_str(&self.action(action.trim()).map_err(fail)?);
            rest = next;
        }
        out.push_str(rest);
        Ok(out)
    }

    fn action(&self, action: &str) -> Result<String, String> {
        if action.is_empty() {
            return Err("missing value for command".to_string());
        }
        let words = split_words(action)?;
        match words.as_slice() {
            [path] if path.starts_with('.') => self.field(path),
            [func, map, key] if func == "index" => {
                if map != ".Service.Labels" {
                    return Err(format!("index of {map}: only .Service.Labels can be indexed"));
                }
                let key = unquote(key).ok_or_else(|| format!("index key {key} is not a quoted string"))?;
                Ok(self.service_labels.get(&key).cloned().unwrap_or_default())
            }
            _ => Err(format!(
                "unsupported action {{{{{action}}}}}: only fields such as {{{{.Service.Name}}}} and {{{{index .Service.Labels \"key\"}}}} can be used"
            )),
        }
    }

    fn field(&self, path: &str) -> Result<String, String> {
        let value = match path {
            ".Service.ID" => &self.service_id,
            ".Service.Name" => &self.service_name,
            ".Node.ID" => &self.node_id,
            ".Node.Hostname" => &self.node_hostname,
            ".Node.Platform.OS" => &self.node_os,
            ".Node.Platform.Architecture" => &self.node_architecture,
            ".Task.ID" => &self.task_id,
            ".Task.Name" => &self.task_name,
            ".Task.Slot" => &self.task_slot,
            ".Service.Labels" => return Ok(go_map(&self.service_labels)),
            other => {
                // A label read as a field: `.Service.Labels.key`. Swarm's templates run with
                // `missingkey=error`, so a label the service does not have is an error here,
                // while `index` gives the empty string.
                // Go reads `.a.b` as a chain of fields, so the key must be one identifier.
                if let Some(key) = other
                    .strip_prefix(".Service.Labels.")
                    .filter(|k| k.chars().all(|c| c.is_alphanumeric() || c == '_'))
                {
                    return self
                        .service_labels
                        .get(key)
                        .cloned()
                        .ok_or_else(|| format!("map has no entry for key {key:?}"));
                }
                return Err(format!(
                    "unknown field {other}: the fields are .Service.ID, .Service.Name, .Service.Labels, .Node.ID, .Node.Hostname, .Node.Platform.OS, .Node.Platform.Architecture, .Task.ID, .Task.Name and .Task.Slot"
                ));
            }
        };
        Ok(value.clone())
    }

    /// The container spec with its templated fields expanded: hostname, environment values,
    /// and mount sources, targets, volume labels and volume driver options.
    pub fn expand_container_spec(&self, spec: &ContainerSpec) -> Result<ContainerSpec, TemplateError> {
        let mut spec = spec.clone();
        spec.hostname = self.expand(&spec.hostname)?;
        if let Some(env) = spec.env.as_mut() {
            for entry in env.iter_mut() {
                if let Some((key, value)) = entry.split_once('=') {
                    *entry = format!("{key}={}", self.expand(value)?);
                }
            }
        }
        for mount in spec.mounts.iter_mut().flatten() {
            mount.source = self.expand(&mount.source)?;
            mount.target = self.expand(&mount.target)?;
            if let Some(volume) = mount.volume_options.as_mut() {
                for value in volume.labels.iter_mut().flat_map(|l| l.values_mut()) {
                    *value = self.expand(value)?;
                }
                if let Some(driver) = volume.driver_config.as_mut() {
                    for value in driver.options.iter_mut().flat_map(|o| o.values_mut()) {
                        *value = self.expand(value)?;
                    }
                }
            }
        }
        Ok(spec)
    }
}

/// An action's words: bare words and double-quoted strings.
fn split_words(action: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            let mut word = String::from('"');
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                word.push(c);
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        word.push(escaped);
                    }
                } else if c == '"' {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err("unterminated quoted string".to_string());
            }
            words.push(word);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
            words.push(word);
        }
    }
    Ok(words)
}

/// A Go double-quoted string's value (with `\"` and `\\` escapes).
fn unquote(word: &str) -> Option<String> {
    let inner = word.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// A map as Go's templates print one: `map[a:1 b:2]`, keys sorted.
fn go_map(m: &BTreeMap<String, String>) -> String {
    let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use swarm_model::Mount;

    use super::*;

    fn ctx() -> TemplateContext {
        TemplateContext {
            service_id: "svc123".to_string(),
            service_name: "web".to_string(),
            service_labels: BTreeMap::from([("tier".to_string(), "front".to_string())]),
            node_id: "node456".to_string(),
            node_hostname: "host-a".to_string(),
            node_os: "linux".to_string(),
            node_architecture: "x86_64".to_string(),
            task_id: "task789".to_string(),
            task_name: "web.2.task789".to_string(),
            task_slot: "2".to_string(),
        }
    }

    fn expand(t: &str) -> String {
        ctx().expand(t).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn service_id() {
        assert_eq!(expand("{{.Service.ID}}"), "svc123");
    }

    #[test]
    fn service_name() {
        assert_eq!(expand("h-{{.Service.Name}}"), "h-web");
    }

    #[test]
    fn service_labels() {
        assert_eq!(expand("{{index .Service.Labels \"tier\"}}"), "front");
        assert_eq!(expand("{{.Service.Labels.tier}}"), "front");
        assert_eq!(expand("[{{index .Service.Labels \"none\"}}]"), "[]");
        assert_eq!(expand("{{.Service.Labels}}"), "map[tier:front]");
    }

    #[test]
    fn node_id() {
        assert_eq!(expand("{{.Node.ID}}"), "node456");
    }

    #[test]
    fn node_hostname() {
        assert_eq!(expand("NODE={{.Node.Hostname}}"), "NODE=host-a");
    }

    #[test]
    fn node_platform_os() {
        assert_eq!(expand("{{.Node.Platform.OS}}"), "linux");
    }

    #[test]
    fn node_platform_architecture() {
        assert_eq!(expand("{{.Node.Platform.Architecture}}"), "x86_64");
    }

    #[test]
    fn task_id() {
        assert_eq!(expand("{{.Task.ID}}"), "task789");
    }

    #[test]
    fn task_name() {
        assert_eq!(expand("{{.Task.Name}}"), "web.2.task789");
    }

    #[test]
    fn task_slot() {
        assert_eq!(expand("h-{{.Service.Name}}-{{.Task.Slot}}"), "h-web-2");
    }

    #[test]
    fn text_without_actions_and_spacing_inside_actions() {
        assert_eq!(expand("plain text } {"), "plain text } {");
        assert_eq!(expand("{{ .Task.Slot }}/{{.Task.Slot}}"), "2/2");
        assert_eq!(expand("a  {{- .Task.Slot -}}  b"), "a2b");
        assert_eq!(expand(""), "");
    }

    #[test]
    fn a_bad_template_is_an_error_that_names_it() {
        for bad in [
            "{{.Service.Nme}}",
            "{{.Service.Labels.none}}",
            "{{.Service.Labels.com.example}}",
            "{{.Task}}",
            "x-{{.Task.Slot",
            "{{}}",
            "{{printf \"%s\" .Task.ID}}",
            "{{index .Node.ID \"x\"}}",
            "{{index .Service.Labels tier}}",
        ] {
            let err = ctx().expand(bad).expect_err(bad);
            assert_eq!(err.template, bad);
            assert!(err.to_string().starts_with(&format!("template {bad:?}: ")), "{err}");
        }
    }

    #[test]
    fn a_container_spec_has_hostname_env_and_mounts_expanded() {
        let spec = ContainerSpec {
            hostname: "h-{{.Service.Name}}-{{.Task.Slot}}".to_string(),
            env: Some(vec![
                "NODE={{.Node.Hostname}}".to_string(),
                "BARE".to_string(),
                "EQ=a=b".to_string(),
            ]),
            mounts: Some(vec![Mount {
                type_: "volume".to_string(),
                source: "data-{{.Task.Slot}}".to_string(),
                target: "/data/{{.Service.Name}}".to_string(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let out = ctx().expand_container_spec(&spec).unwrap();
        assert_eq!(out.hostname, "h-web-2");
        assert_eq!(
            out.env,
            Some(vec![
                "NODE=host-a".to_string(),
                "BARE".to_string(),
                "EQ=a=b".to_string()
            ])
        );
        let mount = &out.mounts.unwrap()[0];
        assert_eq!(mount.source, "data-2");
        assert_eq!(mount.target, "/data/web");
    }

    #[test]
    fn a_bad_env_template_fails_the_whole_spec() {
        let spec = ContainerSpec {
            env: Some(vec!["X={{.Nope}}".to_string()]),
            ..Default::default()
        };
        let err = ctx().expand_container_spec(&spec).unwrap_err();
        assert_eq!(err.template, "{{.Nope}}");
    }
}
