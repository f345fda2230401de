//! The snapshot backend: Kubernetes objects read from files (a folder of
//! manifests, multi-document YAML or JSON, or a `kubectl get -o yaml` List
//! dump) and served from memory. A file that does not parse is reported with
//! its line and the rest are still served.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::{
    ApiResourceInfo, KindRef, KubeBackend, KubeError, ListQuery, LogQuery, ObjectPage,
    StoredObject, StoredObjectInner, scope,
};
use crate::bindings::sonde::probe::kube::PatchType;

/// A problem with one input file or document; the rest of the snapshot is still used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotIssue {
    pub file: PathBuf,
    /// 1-based line, where known.
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for SnapshotIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Why a snapshot could not be opened at all.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The path does not exist or cannot be read.
    #[error("cannot read snapshot {path}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Objects from files, indexed by kind and ordered by namespace/name like the API server's lists.
pub struct SnapshotBackend {
    source: String,
    kinds: BTreeMap<KindRef, KindObjects>,
    issues: Vec<SnapshotIssue>,
}

#[derive(Default)]
struct KindObjects {
    api_version: String,
    /// Keyed by (namespace or "", name).
    objects: BTreeMap<(String, String), (StoredObject, PathBuf)>,
}

impl SnapshotBackend {
    /// Reads a file or, recursively, every `.yaml`, `.yml` and `.json` file of a folder.
    pub fn load(path: &Path) -> Result<Self, SnapshotError> {
        let unreadable = |source| SnapshotError::Unreadable {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(unreadable)?;
        let mut files = Vec::new();
        if meta.is_dir() {
            for entry in walkdir::WalkDir::new(path)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(|e| {
                    e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.')
                })
            {
                let entry = entry.map_err(|e| unreadable(e.into()))?;
                let p = entry.path();
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                if entry.file_type().is_file() && matches!(ext, "yaml" | "yml" | "json") {
                    files.push(p.to_path_buf());
                }
            }
        } else {
            files.push(path.to_path_buf());
        }
        let mut snap = SnapshotBackend {
            source: format!("snapshot {}", path.display()),
            kinds: BTreeMap::new(),
            issues: Vec::new(),
        };
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => snap.add_text(&file, &text),
                Err(e) => snap.issue(&file, None, format!("cannot read: {e}")),
            }
        }
        Ok(snap)
    }

    /// A snapshot of objects given in memory (tests, benchmarks, generated data).
    pub fn from_values(source: &str, values: Vec<Value>) -> Self {
        let mut snap = SnapshotBackend {
            source: source.to_string(),
            kinds: BTreeMap::new(),
            issues: Vec::new(),
        };
        let origin = PathBuf::from(source);
        for v in values {
            snap.add_value(&origin, None, v);
        }
        snap
    }

    /// Problems met while reading the files.
    pub fn issues(&self) -> &[SnapshotIssue] {
        &self.issues
    }

    /// How many objects are held.
    pub fn len(&self) -> usize {
        self.kinds.values().map(|k| k.objects.len()).sum()
    }

    /// Whether no object is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn issue(&mut self, file: &Path, line: Option<usize>, message: String) {
        self.issues.push(SnapshotIssue {
            file: file.to_path_buf(),
            line,
            message,
        });
    }

    fn add_text(&mut self, file: &Path, text: &str) {
        let is_json = file.extension().is_some_and(|e| e == "json");
        if is_json {
            match serde_json::from_str::<Value>(text) {
                Ok(v) => self.add_value(file, Some(1), v),
                Err(e) => self.issue(file, Some(e.line()), format!("invalid JSON: {e}")),
            }
            return;
        }
        for (start_line, doc) in split_yaml_documents(text) {
            let parsed = serde_yaml::from_str::<serde_yaml::Value>(doc).and_then(|mut v| {
                v.apply_merge()?;
                Ok(v)
            });
            match parsed {
                Ok(serde_yaml::Value::Null) => {}
                Ok(v) => match serde_json::to_value(&v) {
                    Ok(json) => self.add_value(file, Some(start_line), json),
                    Err(e) => self.issue(file, Some(start_line), format!("unsupported YAML: {e}")),
                },
                Err(e) => {
                    // An error found at the end of input is shown on the document's last line.
                    let last = start_line + doc.trim_end().lines().count().max(1) - 1;
                    let line = e.location().map(|l| (start_line + l.line() - 1).min(last));
                    let msg = e.to_string();
                    // serde_yaml appends "at line N column M"; the issue carries the line already.
                    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                    self.issue(
                        file,
                        line.or(Some(start_line)),
                        format!("invalid YAML: {msg}"),
                    );
                }
            }
        }
    }

    fn add_value(&mut self, file: &Path, line: Option<usize>, mut value: Value) {
        let Some(obj) = value.as_object_mut() else {
            return self.issue(file, line, "a document is not a mapping".into());
        };
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let kind = obj.get("kind").and_then(Value::as_str).map(str::to_string);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            return self.issue(file, line, "object without apiVersion or kind".into());
        };
        if let Some(list_kind) = kind.strip_suffix("List")
            && let Some(Value::Array(items)) = obj.remove("items")
        {
            for mut item in items {
                // Typed lists (PodList) omit apiVersion/kind on items; v1/List items carry them.
                if let Some(m) = item.as_object_mut()
                    && !list_kind.is_empty()
                {
                    m.entry("apiVersion")
                        .or_insert_with(|| Value::String(api_version.clone()));
                    m.entry("kind")
                        .or_insert_with(|| Value::String(list_kind.to_string()));
                }
                self.add_value(file, line, item);
            }
            return;
        }
        let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
            return self.issue(file, line, format!("{kind} without metadata"));
        };
        meta.remove("managedFields");
        let Some(name) = meta.get("name").and_then(Value::as_str).map(str::to_string) else {
            return self.issue(file, line, format!("{kind} without metadata.name"));
        };
        let kref = KindRef::new(&api_version, &kind);
        let namespace = if scope::is_namespaced(&kref.group, &kind) {
            let ns = meta
                .entry("namespace")
                .or_insert_with(|| Value::String("default".into()));
            Some(ns.as_str().unwrap_or("default").to_string())
        } else {
            None
        };
        let json = match serde_json::to_string(&value) {
            Ok(j) => j,
            Err(e) => return self.issue(file, line, format!("cannot encode {kind} {name}: {e}")),
        };
        let stored = Arc::new(StoredObjectInner {
            value,
            json,
            namespace: namespace.clone(),
            name: name.clone(),
        });
        let entry = self.kinds.entry(kref).or_default();
        if entry.api_version.is_empty() {
            entry.api_version = api_version;
        }
        let key = (namespace.unwrap_or_default(), name);
        if let Some((_, first)) = entry
            .objects
            .insert(key.clone(), (stored, file.to_path_buf()))
        {
            let msg = format!(
                "{kind} {}/{} is defined again (first in {}); the later one is used",
                key.0,
                key.1,
                first.display()
            );
            self.issue(file, line, msg);
        }
    }
}

/// Splits a YAML stream on `---` lines, returning each document with its first line (1-based).
fn split_yaml_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let (mut start_byte, mut start_line) = (0, 1);
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        let is_marker = trimmed == "---"
            || trimmed.starts_with("--- ")
            || trimmed.starts_with("---\t")
            || trimmed == "...";
        if is_marker {
            docs.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs.retain(|(_, d)| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

fn parse_continue(token: &str) -> Result<usize, KubeError> {
    token
        .strip_prefix("snapshot:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| KubeError::Invalid(format!("invalid continue token {token:?}")))
}

#[async_trait::async_trait]
impl KubeBackend for SnapshotBackend {
    fn describe(&self) -> String {
        self.source.clone()
    }

    async fn get(
        &self,
        kind: &KindRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<StoredObject, KubeError> {
        let key = (namespace.unwrap_or_default().to_string(), name.to_string());
        self.kinds
            .get(kind)
            .and_then(|k| k.objects.get(&key))
            .map(|(o, _)| o.clone())
            .ok_or_else(|| {
                let plural = scope::plural(&kind.kind);
                let what = if kind.group.is_empty() {
                    plural
                } else {
                    format!("{plural}.{}", kind.group)
                };
                KubeError::NotFound(format!("{what} \"{name}\" not found"))
            })
    }

    async fn list(&self, kind: &KindRef, query: &ListQuery) -> Result<ObjectPage, KubeError> {
        let Some(objects) = self.kinds.get(kind) else {
            return Ok(ObjectPage::default());
        };
        let start = match &query.continue_token {
            Some(t) => parse_continue(t)?,
            None => 0,
        };
        let limit = query.limit.filter(|l| *l > 0).map(|l| l as usize);
        let mut items = Vec::new();
        let mut next = None;
        let selected = objects
            .objects
            .values()
            .map(|(o, _)| o)
            .filter(|o| match &query.namespace {
                Some(ns) => o.namespace.as_deref() == Some(ns.as_str()),
                None => true,
            })
            .filter(|o| {
                query.labels.matches(o.value.pointer("/metadata/labels"))
                    && query.fields.matches(&o.value)
            })
            .enumerate()
            .skip(start);
        for (i, o) in selected {
            if limit.is_some_and(|l| items.len() == l) {
                next = Some(format!("snapshot:{i}"));
                break;
            }
            items.push(o.clone());
        }
        Ok(ObjectPage {
            items,
            resource_version: None,
            continue_token: next,
        })
    }

    async fn pod_logs(
        &self,
        namespace: &str,
        name: &str,
        _: &LogQuery,
    ) -> Result<String, KubeError> {
        Err(KubeError::Unavailable(format!(
            "{}: no container logs in a snapshot (pod {namespace}/{name})",
            self.source
        )))
    }

    async fn discover(&self) -> Result<Vec<ApiResourceInfo>, KubeError> {
        Ok(self
            .kinds
            .iter()
            .map(|(k, objs)| ApiResourceInfo {
                group: k.group.clone(),
                version: objs
                    .api_version
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                kind: k.kind.clone(),
                plural: scope::plural(&k.kind),
                namespaced: scope::is_namespaced(&k.group, &k.kind),
                verbs: vec!["get".into(), "list".into()],
            })
            .collect())
    }

    async fn server_version(&self) -> Result<String, KubeError> {
        Err(KubeError::Unavailable(format!(
            "{}: a snapshot has no API server version",
            self.source
        )))
    }

    async fn create(&self, _: Value) -> Result<StoredObject, KubeError> {
        Err(self.read_only())
    }

    async fn patch(
        &self,
        _: &KindRef,
        _: Option<&str>,
        _: &str,
        _: PatchType,
        _: &str,
    ) -> Result<StoredObject, KubeError> {
        Err(self.read_only())
    }

    async fn delete(&self, _: &KindRef, _: Option<&str>, _: &str) -> Result<(), KubeError> {
        Err(self.read_only())
    }
}

impl SnapshotBackend {
    fn read_only(&self) -> KubeError {
        KubeError::Unavailable(format!("{} is read-only", self.source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn documents_split_with_their_lines() {
        let docs = split_yaml_documents("a: 1\n---\n# c\nb: 2\n--- \n\n---\nc: 3\n");
        assert_eq!(docs.iter().map(|d| d.0).collect::<Vec<_>>(), vec![1, 3, 8]);
    }

    #[tokio::test]
    async fn folder_with_a_bad_file_still_serves_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "apps/web.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n",
        );
        write(
            dir.path(),
            "broken.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: [\n",
        );
        write(
            dir.path(),
            "nodes.json",
            r#"{"apiVersion":"v1","kind":"NodeList","items":[{"metadata":{"name":"n1","managedFields":[{}]}}]}"#,
        );
        write(dir.path(), ".git/config.yaml", "not: [a, manifest\n");
        write(dir.path(), "README.md", "# not read");
        let snap = SnapshotBackend::load(dir.path()).unwrap();
        assert_eq!(snap.len(), 3, "{:?}", snap.issues());
        assert_eq!(snap.issues().len(), 1);
        let issue = &snap.issues()[0];
        assert!(issue.file.ends_with("broken.yaml"));
        assert_eq!(issue.line, Some(5), "{issue}");
        let mut at_end = SnapshotBackend::from_values("m", vec![]);
        at_end.add_text(Path::new("eof.yaml"), "kind: A\n---\nb: [1,\n");
        assert_eq!(at_end.issues().len(), 2);
        assert_eq!(at_end.issues()[1].line, Some(3), "{}", at_end.issues()[1]);
        assert!(issue.message.starts_with("invalid YAML"), "{issue}");

        let web = snap
            .get(
                &KindRef::new("apps/v1", "Deployment"),
                Some("default"),
                "web",
            )
            .await
            .unwrap();
        assert_eq!(web.namespace.as_deref(), Some("default"));
        let node = snap
            .get(&KindRef::new("v1", "Node"), None, "n1")
            .await
            .unwrap();
        assert_eq!(node.value["kind"], "Node");
        assert!(node.value["metadata"].get("managedFields").is_none());
        let err = snap
            .get(&KindRef::new("v1", "Node"), None, "n9")
            .await
            .unwrap_err();
        assert_eq!(err, KubeError::NotFound("nodes \"n9\" not found".into()));
    }

    #[tokio::test]
    async fn list_filters_and_pages() {
        let values = (0..5)
            .map(|i| {
                serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("p{i}"), "namespace": if i < 3 {"a"} else {"b"}, "labels": {"i": i.to_string()}}})
            })
            .collect();
        let snap = SnapshotBackend::from_values("mem", values);
        let pods = KindRef::new("v1", "Pod");
        let all = snap.list(&pods, &ListQuery::default()).await.unwrap();
        assert_eq!(all.items.len(), 5);
        let q = ListQuery {
            namespace: Some("a".into()),
            labels: super::super::selector::LabelSelector::parse("i notin (0)").unwrap(),
            ..Default::default()
        };
        let names: Vec<_> = snap
            .list(&pods, &q)
            .await
            .unwrap()
            .items
            .iter()
            .map(|o| o.name.clone())
            .collect();
        assert_eq!(names, vec!["p1", "p2"]);
        let mut q = ListQuery {
            limit: Some(2),
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = snap.list(&pods, &q).await.unwrap();
            seen.extend(page.items.iter().map(|o| o.name.clone()));
            match page.continue_token {
                Some(t) => q.continue_token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, vec!["p0", "p1", "p2", "p3", "p4"]);
        q.continue_token = Some("garbage".into());
        assert!(matches!(
            snap.list(&pods, &q).await,
            Err(KubeError::Invalid(_))
        ));
    }
}
