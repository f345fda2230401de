//! `sonde:probe/kube`: Kubernetes reads and writes, checked against the
//! grant (kind, verb, namespace), served by the configured `KubeBackend`.
//! An all-namespaces list under a namespace-restricted grant is served
//! restricted to the granted namespaces.

use crate::bindings::KubeVerb;
use crate::bindings::ProbeError;
use crate::bindings::sonde::probe::kube::{
    ApiResource, Host, ListOptions, LogOptions, ObjectList, PatchType,
};
use crate::kube::selector::{FieldSelector, LabelSelector};
use crate::kube::{KindRef, KubeBackend, ListQuery, LogQuery, scope};
use crate::runtime::RunState;
use crate::runtime::outcome::LogLevel;

type KubeResult<T> = wasmtime::Result<Result<T, ProbeError>>;

fn scope_text(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "cluster-wide".into(),
    }
}

impl RunState {
    fn backend(&self) -> Result<std::sync::Arc<dyn KubeBackend>, ProbeError> {
        self.ctx.services.kube.clone().ok_or_else(|| {
            ProbeError::Unavailable("no cluster or snapshot is configured for this run".into())
        })
    }

    fn check_kube(
        &mut self,
        kind: &KindRef,
        verb: KubeVerb,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Result<(), ProbeError> {
        if self
            .ctx
            .grants
            .allows_kube(&kind.group, &kind.kind, verb, namespace)
        {
            return Ok(());
        }
        let target = name.map(|n| format!(" {n}")).unwrap_or_default();
        let detail = format!("{} {kind}{target} {}", verb.as_str(), scope_text(namespace));
        Err(ProbeError::Denied(self.ctx.deny("kube", detail)))
    }

    async fn kube_get(
        &mut self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<String, ProbeError> {
        let kref = KindRef::new(api_version, kind);
        let ns = namespace.filter(|_| scope::is_namespaced(&kref.group, &kref.kind));
        self.check_kube(&kref, KubeVerb::Get, ns, Some(name))?;
        Ok(self.backend()?.get(&kref, ns, name).await?.json.clone())
    }

    async fn kube_pod_logs(
        &mut self,
        namespace: &str,
        name: &str,
        options: LogOptions,
    ) -> Result<String, ProbeError> {
        self.check_kube(
            &KindRef::new("v1", "Pod"),
            KubeVerb::Logs,
            Some(namespace),
            Some(name),
        )?;
        let query = LogQuery {
            container: options.container,
            tail_lines: options.tail_lines,
            since_seconds: options.since_seconds,
            previous: options.previous,
            limit_bytes: self.ctx.limits.max_response_bytes,
        };
        Ok(self.backend()?.pod_logs(namespace, name, &query).await?)
    }

    async fn kube_discover(&mut self) -> Result<Vec<ApiResource>, ProbeError> {
        if self.ctx.grants.kube.is_empty() {
            return Err(ProbeError::Denied(
                self.ctx.deny("kube", "discovery".into()),
            ));
        }
        let list = self.backend()?.discover().await?;
        Ok(list
            .into_iter()
            .map(|r| ApiResource {
                group: r.group,
                version: r.version,
                kind: r.kind,
                plural: r.plural,
                namespaced: r.namespaced,
                verbs: r.verbs,
            })
            .collect())
    }

    async fn kube_create(&mut self, object: &str) -> Result<String, ProbeError> {
        let mut value: serde_json::Value = serde_json::from_str(object)
            .map_err(|e| ProbeError::InvalidInput(format!("object is not JSON: {e}")))?;
        let api_version = value["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        if api_version.is_empty() || kind.is_empty() {
            return Err(ProbeError::InvalidInput(
                "object needs apiVersion and kind".into(),
            ));
        }
        let kref = KindRef::new(&api_version, &kind);
        let ns = value["metadata"]["namespace"].as_str().map(str::to_string);
        let name = value["metadata"]["name"].as_str().map(str::to_string);
        self.check_kube(&kref, KubeVerb::Create, ns.as_deref(), name.as_deref())?;
        // Every object a probe creates carries its probe and run, for cleanup.
        if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            let labels = meta
                .entry("labels")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(
                    crate::kube::sweep::PROBE_LABEL.into(),
                    self.ctx.probe.clone().into(),
                );
                labels.insert(
                    crate::kube::sweep::RUN_LABEL.into(),
                    self.ctx.run_id.clone().into(),
                );
            }
        }
        let created = self.backend()?.create(value).await?;
        self.ctx.created.push(crate::runtime::CreatedObject {
            kind: kref,
            namespace: created.namespace.clone(),
            name: created.name.clone(),
        });
        Ok(created.json.clone())
    }

    async fn kube_patch(
        &mut self,
        kref: KindRef,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: &str,
    ) -> Result<String, ProbeError> {
        self.check_kube(&kref, KubeVerb::Patch, namespace, Some(name))?;
        let patched = self
            .backend()?
            .patch(&kref, namespace, name, patch_type, patch)
            .await?;
        Ok(patched.json.clone())
    }

    async fn kube_delete(
        &mut self,
        kref: KindRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ProbeError> {
        self.check_kube(&kref, KubeVerb::Delete, namespace, Some(name))?;
        self.backend()?.delete(&kref, namespace, name).await?;
        // Deleted by the probe itself: nothing left for the run's clean-up.
        self.ctx
            .created
            .retain(|o| !(o.kind == kref && o.namespace.as_deref() == namespace && o.name == name));
        Ok(())
    }

    async fn kube_list(
        &mut self,
        api_version: &str,
        kind: &str,
        options: ListOptions,
    ) -> Result<ObjectList, ProbeError> {
        let kref = KindRef::new(api_version, kind);
        let labels = LabelSelector::parse(options.label_selector.as_deref().unwrap_or(""))
            .map_err(|e| ProbeError::InvalidInput(e.to_string()))?;
        let fields = FieldSelector::parse(options.field_selector.as_deref().unwrap_or(""))
            .map_err(|e| ProbeError::InvalidInput(e.to_string()))?;
        let namespaced = scope::is_namespaced(&kref.group, &kref.kind);
        let ns = options.namespace.as_deref().filter(|_| namespaced);
        // A list across namespaces under a namespace-restricted grant sees only the granted ones.
        let grants = &self.ctx.grants;
        let restrict = !grants.allows_kube(&kref.group, &kref.kind, KubeVerb::List, ns)
            && ns.is_none()
            && namespaced
            && grants.allows_kube_somewhere(&kref.group, &kref.kind, KubeVerb::List);
        if !restrict {
            self.check_kube(&kref, KubeVerb::List, ns, None)?;
        }
        let query = ListQuery {
            namespace: ns.map(str::to_string),
            labels,
            fields,
            raw_labels: options.label_selector.filter(|s| !s.trim().is_empty()),
            raw_fields: options.field_selector.filter(|s| !s.trim().is_empty()),
            limit: options.limit,
            continue_token: options.continue_token,
        };
        let page = self.backend()?.list(&kref, &query).await?;
        let total = page.items.len();
        let grants = &self.ctx.grants;
        let items: Vec<String> = page
            .items
            .iter()
            .filter(|o| {
                !restrict
                    || grants.allows_kube_object(&kref.group, &kref.kind, o.namespace.as_deref())
            })
            .map(|o| o.json.clone())
            .collect();
        if restrict {
            let hidden = total - items.len();
            self.ctx.host_note(
                LogLevel::Info,
                format!("list {kref}: served only the granted namespaces ({hidden} objects outside them hidden)"),
            );
        }
        Ok(ObjectList {
            items,
            resource_version: page.resource_version,
            continue_token: page.continue_token,
        })
    }
}

impl Host for RunState {
    async fn get(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    ) -> KubeResult<String> {
        Ok(self
            .kube_get(&api_version, &kind, namespace.as_deref(), &name)
            .await)
    }

    async fn list(
        &mut self,
        api_version: String,
        kind: String,
        options: ListOptions,
    ) -> KubeResult<ObjectList> {
        Ok(self.kube_list(&api_version, &kind, options).await)
    }

    async fn pod_logs(
        &mut self,
        namespace: String,
        name: String,
        options: LogOptions,
    ) -> KubeResult<String> {
        Ok(self.kube_pod_logs(&namespace, &name, options).await)
    }

    async fn discover(&mut self) -> KubeResult<Vec<ApiResource>> {
        Ok(self.kube_discover().await)
    }

    async fn server_version(&mut self) -> KubeResult<String> {
        if self.ctx.grants.kube.is_empty() {
            return Ok(Err(ProbeError::Denied(
                self.ctx.deny("kube", "server version".into()),
            )));
        }
        Ok(match self.backend() {
            Ok(b) => b.server_version().await.map_err(Into::into),
            Err(e) => Err(e),
        })
    }

    async fn create(&mut self, object: String) -> KubeResult<String> {
        Ok(self.kube_create(&object).await)
    }

    async fn patch(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
        patch_type: PatchType,
        patch: String,
    ) -> KubeResult<String> {
        let kref = KindRef::new(&api_version, &kind);
        Ok(self
            .kube_patch(kref, namespace.as_deref(), &name, patch_type, &patch)
            .await)
    }

    async fn delete(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    ) -> KubeResult<()> {
        let kref = KindRef::new(&api_version, &kind);
        Ok(self.kube_delete(kref, namespace.as_deref(), &name).await)
    }
}
