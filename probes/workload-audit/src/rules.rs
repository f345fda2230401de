//! The rules of the workload audit, KubeEye's workload checks, each declared
//! once with its severity and remedy.

use sonde_sdk::{Rule, Severity};

macro_rules! rules {
    ($($name:ident = ($id:literal, $title:literal, $cat:literal, $sev:ident, $desc:literal, $remedy:literal);)*) => {
        $(pub const $name: Rule = Rule::new($id, $title, $cat, Severity::$sev, $desc, $remedy);)*
        /// Every rule, in the order reports list them.
        pub const ALL: &[Rule] = &[$($name),*];
    };
}

rules! {
    NO_CPU_LIMITS = ("NoCPULimits", "CPU limits not set", "resources", Low,
        "A container has no CPU limit (neither its own nor a pod-level one), so it can use every idle CPU of its node.",
        "Set resources.limits.cpu on the container, or spec.resources.limits.cpu on the pod.");
    NO_CPU_REQUESTS = ("NoCPURequests", "CPU requests not set", "resources", Medium,
        "A container has no CPU request (and no CPU limit it would default to), so the scheduler places it as if it needed no CPU.",
        "Set resources.requests.cpu on the container to what it uses under normal load.");
    NO_MEMORY_LIMITS = ("NoMemoryLimits", "Memory limits not set", "resources", Medium,
        "A container has no memory limit, so a leak can exhaust its node's memory and get other pods OOM-killed or evicted.",
        "Set resources.limits.memory on the container, or spec.resources.limits.memory on the pod.");
    NO_MEMORY_REQUESTS = ("NoMemoryRequests", "Memory requests not set", "resources", Medium,
        "A container has no memory request (and no memory limit it would default to), so the scheduler may overcommit its node.",
        "Set resources.requests.memory on the container to its working set.");
    NO_LIVENESS_PROBE = ("NoLivenessProbe", "Liveness probe not set", "reliability", Low,
        "A container has no liveness probe, so the kubelet cannot restart it when it hangs.",
        "Add a livenessProbe (httpGet, tcpSocket, grpc or exec) that fails when the process is stuck.");
    NO_READINESS_PROBE = ("NoReadinessProbe", "Readiness probe not set", "reliability", Low,
        "A container has no readiness probe, so it receives traffic before it can serve it.",
        "Add a readinessProbe that succeeds only once the container can serve requests.");
    IMAGE_TAG_IS_LATEST = ("ImageTagIsLatest", "Image tag is latest", "images", Medium,
        "An image uses the tag `latest`, so what runs changes whenever the tag moves and cannot be rolled back.",
        "Use an immutable version tag or pin the image by digest (image@sha256:...).");
    IMAGE_TAG_MISS = ("ImageTagMiss", "Image tag not specified", "images", Medium,
        "An image has neither tag nor digest, which means `latest`.",
        "Use an immutable version tag or pin the image by digest (image@sha256:...).");
    IMAGE_PULL_POLICY_NOT_ALWAYS = ("ImagePullPolicyNotAlways", "Image pull policy is not Always", "images", Low,
        "The effective imagePullPolicy (explicit, or Kubernetes' default for the image reference) is not Always, so a node may run a stale cached image and skip the registry's credential check.",
        "Set imagePullPolicy: Always.");
    NO_PRIORITY_CLASS_NAME = ("NoPriorityClassName", "Priority class not set", "reliability", Info,
        "The pod has no priorityClassName, so under pressure it is preempted and evicted like any other pod.",
        "Set spec.priorityClassName to a PriorityClass that reflects how critical the workload is.");
    PRIVILEGED_ALLOWED = ("PrivilegedAllowed", "Privileged container", "security", Critical,
        "A container runs privileged: it has every capability and all host devices, equivalent to root on the node.",
        "Remove securityContext.privileged, and add only the capabilities the container needs.");
    PRIVILEGE_ESCALATION_ALLOWED = ("PrivilegeEscalationAllowed", "Privilege escalation allowed", "security", High,
        "A container allows privilege escalation (allowPrivilegeEscalation: true, privileged, or CAP_SYS_ADMIN), so setuid binaries can gain more privileges than the process started with.",
        "Set securityContext.allowPrivilegeEscalation: false.");
    NOT_RUN_AS_NON_ROOT = ("NotRunAsNonRoot", "May run as root", "security", Medium,
        "Neither runAsNonRoot: true nor a non-zero runAsUser applies to the container (pod settings included), so it may run as root.",
        "Set securityContext.runAsNonRoot: true (pod or container) and a non-zero runAsUser.");
    NOT_READ_ONLY_ROOT_FILESYSTEM = ("NotReadOnlyRootFilesystem", "Root filesystem is writable", "security", Low,
        "A container's root filesystem is writable, so an intruder can change its binaries and configuration.",
        "Set securityContext.readOnlyRootFilesystem: true and mount emptyDir volumes where the container must write.");
    HOST_IPC_ALLOWED = ("HostIPCAllowed", "Host IPC namespace", "security", High,
        "The pod shares the node's IPC namespace and can read other processes' shared memory.",
        "Remove spec.hostIPC.");
    HOST_NETWORK_ALLOWED = ("HostNetworkAllowed", "Host network namespace", "security", High,
        "The pod shares the node's network namespace: it can bind node ports and reach node-local services.",
        "Remove spec.hostNetwork unless the pod is a node-level network agent.");
    HOST_PID_ALLOWED = ("HostPIDAllowed", "Host PID namespace", "security", High,
        "The pod shares the node's PID namespace and can see and signal every process on the node.",
        "Remove spec.hostPID.");
    HOST_PORT_ALLOWED = ("HostPortAllowed", "Host port", "security", Medium,
        "A container binds a port on the node's address, which limits scheduling and bypasses network policy.",
        "Remove hostPort and expose the container through a Service.");
    HIGH_RISK_CAPABILITIES = ("HighRiskCapabilities", "High-risk capabilities", "security", High,
        "A container adds Linux capabilities that break container isolation (ALL, SYS_ADMIN, NET_ADMIN, SYS_MODULE, SYS_PTRACE, SYS_RAWIO, BPF, ...).",
        "Remove these capabilities from securityContext.capabilities.add.");
    INSECURE_CAPABILITIES = ("InsecureCapabilities", "Insecure capabilities", "security", Medium,
        "A container adds capabilities that are not needed by most workloads and widen what a compromised process can do (CHOWN, KILL, SYS_CHROOT, NET_RAW, SETUID, ...).",
        "Drop ALL capabilities and add back only what the container needs.");
}

/// Capabilities that break container isolation.
pub const HIGH_RISK_CAPS: &[&str] = &[
    "ALL",
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_MODULE",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_BOOT",
    "BPF",
    "PERFMON",
    "DAC_READ_SEARCH",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
];

/// Capabilities in the runtime's default set that most workloads do not need.
pub const INSECURE_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];
