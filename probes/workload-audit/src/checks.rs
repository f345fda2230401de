//! The checks of one pod spec, following the Kubernetes API's semantics:
//! requests default to limits, pod-level resources and security settings
//! apply to every container unless a container overrides them, init
//! containers cannot have probes unless they are sidecars
//! (`restartPolicy: Always`), and Linux-only settings are not asked of
//! Windows pods.

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, PodSpec, ResourceRequirements};
use sonde_sdk::{Finding, ResourceRef, Rule};

use crate::image;
use crate::rules::*;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Regular,
    Init,
    Sidecar,
}

struct Ctx<'a> {
    resource: &'a ResourceRef,
    out: &'a mut Vec<Finding>,
}

impl Ctx<'_> {
    fn pod(&mut self, rule: &Rule, message: String) {
        self.out
            .push(rule.finding(self.resource.clone(), message).into());
    }

    fn container(&mut self, rule: &Rule, c: &Container, what: &str) {
        let finding = rule
            .finding(
                self.resource.clone(),
                format!("container {:?}: {what}", c.name),
            )
            .label("container", c.name.clone());
        self.out.push(finding.into());
    }
}

fn has(resources: Option<&ResourceRequirements>, limits: bool, name: &str) -> bool {
    resources
        .and_then(|r| {
            if limits {
                r.limits.as_ref()
            } else {
                r.requests.as_ref()
            }
        })
        .is_some_and(|m| m.contains_key(name))
}

/// Normalises a capability name as container runtimes accept it (`cap_sys_admin` = `SYS_ADMIN`).
fn cap_name(raw: &str) -> String {
    let upper = raw.trim().to_ascii_uppercase();
    upper
        .strip_prefix("CAP_")
        .map(str::to_string)
        .unwrap_or(upper)
}

/// Appends every finding for one pod spec (of a workload template or a bare pod).
pub fn audit_pod_spec(resource: &ResourceRef, spec: &PodSpec, out: &mut Vec<Finding>) {
    let mut ctx = Ctx { resource, out };
    let linux = spec.os.as_ref().is_none_or(|os| os.name != "windows");
    if spec.host_ipc == Some(true) {
        ctx.pod(&HOST_IPC_ALLOWED, "hostIPC should not be set".into());
    }
    if spec.host_network == Some(true) {
        ctx.pod(
            &HOST_NETWORK_ALLOWED,
            "hostNetwork should not be set".into(),
        );
    }
    if spec.host_pid == Some(true) {
        ctx.pod(&HOST_PID_ALLOWED, "hostPID should not be set".into());
    }
    if spec.priority_class_name.as_deref().unwrap_or("").is_empty() {
        ctx.pod(
            &NO_PRIORITY_CLASS_NAME,
            "priorityClassName can be set".into(),
        );
    }
    let init = spec.init_containers.iter().flatten().map(|c| {
        let role = if c.restart_policy.as_deref() == Some("Always") {
            Role::Sidecar
        } else {
            Role::Init
        };
        (c, role)
    });
    let regular = spec.containers.iter().map(|c| (c, Role::Regular));
    for (container, role) in init.chain(regular) {
        audit_container(&mut ctx, spec, container, role, linux);
    }
}

fn audit_container(ctx: &mut Ctx<'_>, spec: &PodSpec, c: &Container, role: Role, linux: bool) {
    let own = c.resources.as_ref();
    let pod = spec.resources.as_ref();
    for (name, label, limit_rule, request_rule) in [
        ("cpu", "CPU", &NO_CPU_LIMITS, &NO_CPU_REQUESTS),
        ("memory", "memory", &NO_MEMORY_LIMITS, &NO_MEMORY_REQUESTS),
    ] {
        let limited = has(own, true, name) || has(pod, true, name);
        // A request defaults to the limit when only the limit is set.
        let requested = limited || has(own, false, name) || has(pod, false, name);
        if !limited {
            ctx.container(limit_rule, c, &format!("{label} limits should be set"));
        }
        if !requested {
            ctx.container(request_rule, c, &format!("{label} requests should be set"));
        }
    }
    if role != Role::Init {
        if c.liveness_probe.is_none() {
            ctx.container(&NO_LIVENESS_PROBE, c, "livenessProbe should be set");
        }
        if c.readiness_probe.is_none() {
            ctx.container(&NO_READINESS_PROBE, c, "readinessProbe should be set");
        }
    }
    audit_image(ctx, c);
    if c.ports
        .iter()
        .flatten()
        .any(|p| p.host_port.unwrap_or(0) > 0)
    {
        ctx.container(&HOST_PORT_ALLOWED, c, "hostPort should not be set");
    }
    if linux {
        audit_security(ctx, spec.security_context.as_ref(), c);
    }
}

fn audit_image(ctx: &mut Ctx<'_>, c: &Container) {
    let Some(reference) = c.image.as_deref().and_then(image::parse) else {
        return;
    };
    match (reference.tag, reference.digest) {
        (Some("latest"), None) => ctx.container(
            &IMAGE_TAG_IS_LATEST,
            c,
            "image tag is 'latest', use a version",
        ),
        (None, None) => ctx.container(
            &IMAGE_TAG_MISS,
            c,
            "image tag not specified, do not use 'latest'",
        ),
        _ => {}
    }
    let policy = c
        .image_pull_policy
        .as_deref()
        .unwrap_or_else(|| reference.default_pull_policy());
    if policy != "Always" {
        ctx.container(
            &IMAGE_PULL_POLICY_NOT_ALWAYS,
            c,
            &format!("imagePullPolicy should be set 'Always' (it is {policy})"),
        );
    }
}

fn audit_security(ctx: &mut Ctx<'_>, pod: Option<&PodSecurityContext>, c: &Container) {
    let sc = c.security_context.as_ref();
    let privileged = sc.and_then(|s| s.privileged) == Some(true);
    let added: Vec<String> = sc
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|caps| caps.add.as_ref())
        .map(|add| add.iter().map(|a| cap_name(a)).collect())
        .unwrap_or_default();
    if privileged {
        ctx.container(&PRIVILEGED_ALLOWED, c, "privileged should be set false");
    }
    let escalation = sc.and_then(|s| s.allow_privilege_escalation) == Some(true)
        || privileged
        || added.iter().any(|a| a == "SYS_ADMIN" || a == "ALL");
    if escalation {
        ctx.container(
            &PRIVILEGE_ESCALATION_ALLOWED,
            c,
            "allowPrivilegeEscalation should be set false",
        );
    }
    let run_as_non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod.and_then(|p| p.run_as_non_root));
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or(pod.and_then(|p| p.run_as_user));
    if run_as_non_root != Some(true) {
        match run_as_user {
            Some(0) => ctx.container(
                &NOT_RUN_AS_NON_ROOT,
                c,
                "runs as root (runAsUser: 0), runAsNonRoot should be set",
            ),
            Some(_) => {}
            None => ctx.container(&NOT_RUN_AS_NON_ROOT, c, "runAsNonRoot can be set"),
        }
    }
    if sc.and_then(|s| s.read_only_root_filesystem) != Some(true) {
        ctx.container(
            &NOT_READ_ONLY_ROOT_FILESYSTEM,
            c,
            "root file system should be set read only",
        );
    }
    let high: Vec<&str> = added
        .iter()
        .map(String::as_str)
        .filter(|a| HIGH_RISK_CAPS.contains(a))
        .collect();
    if !high.is_empty() {
        ctx.container(
            &HIGH_RISK_CAPABILITIES,
            c,
            &format!("have HighRisk capabilities ({})", high.join(", ")),
        );
    }
    let insecure: Vec<&str> = added
        .iter()
        .map(String::as_str)
        .filter(|a| INSECURE_CAPS.contains(a))
        .collect();
    if !insecure.is_empty() {
        ctx.container(
            &INSECURE_CAPABILITIES,
            c,
            &format!("have insecure capabilities ({})", insecure.join(", ")),
        );
    }
}
