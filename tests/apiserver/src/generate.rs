//! Large clusters in the recorded shape: every generated object is a copy of
//! a recorded one (same fields, same status shape) with its own name, uid and
//! namespace, and pods owned by ReplicaSets as a Deployment's pods are.

use serde_json::{Value, json};

fn template(responses: &std::path::Path, list: &str, name: &str) -> Value {
    let doc: Value = serde_json::from_slice(&std::fs::read(responses.join(list)).unwrap()).unwrap();
    doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {list}"))
        .clone()
}

fn rename(mut o: Value, name: &str, namespace: &str, uid: &str) -> Value {
    let meta = &mut o["metadata"];
    meta["name"] = json!(name);
    meta["namespace"] = json!(namespace);
    meta["uid"] = json!(uid);
    o
}

fn uid(kind: u32, i: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
}

/// `(group, plural, objects)` for a cluster of `workloads` workloads (a quarter of them
/// Deployments, each with one ReplicaSet) and `pods` pods spread over the ReplicaSets.
pub fn cluster(
    responses: &std::path::Path,
    workloads: usize,
    pods: usize,
) -> Vec<(&'static str, &'static str, Vec<Value>)> {
    let deployment = template(responses, "list-deployments.json", "web");
    let replicaset = template(responses, "list-replicasets.json", "web-7d9c6b5f4");
    let statefulset = template(responses, "list-statefulsets.json", "cart-db");
    let daemonset = template(responses, "list-daemonsets.json", "node-agent");
    let job = template(responses, "list-jobs.json", "migrate");
    let cronjob = template(responses, "list-cronjobs.json", "report");
    let pod = template(responses, "list-pods.json", "web-7d9c6b5f4-x2bqk");
    let ns = |i: usize| format!("team-{:02}", i % 50);
    let n_deploy = workloads / 4;
    let rest = workloads - 2 * n_deploy;
    let (n_sts, n_ds, n_job) = (rest * 2 / 5, rest * 3 / 10, rest / 5);
    let n_cron = rest - n_sts - n_ds - n_job;
    let mut deployments = Vec::new();
    let mut replicasets = Vec::new();
    for i in 0..n_deploy {
        deployments.push(rename(
            deployment.clone(),
            &format!("app-{i:05}"),
            &ns(i),
            &uid(1, i),
        ));
        let mut rs = rename(
            replicaset.clone(),
            &format!("app-{i:05}-7d9c6b5f4"),
            &ns(i),
            &uid(2, i),
        );
        rs["metadata"]["ownerReferences"][0]["name"] = json!(format!("app-{i:05}"));
        rs["metadata"]["ownerReferences"][0]["uid"] = json!(uid(1, i));
        replicasets.push(rs);
    }
    let mut pod_list = Vec::new();
    for p in 0..pods {
        let i = p % n_deploy.max(1);
        let mut o = rename(
            pod.clone(),
            &format!("app-{i:05}-7d9c6b5f4-{p:06}"),
            &ns(i),
            &uid(3, p),
        );
        o["metadata"]["ownerReferences"][0]["name"] = json!(format!("app-{i:05}-7d9c6b5f4"));
        o["metadata"]["ownerReferences"][0]["uid"] = json!(uid(2, i));
        pod_list.push(o);
    }
    let many = |t: &Value, n: usize, kind: u32, prefix: &str| -> Vec<Value> {
        (0..n)
            .map(|i| {
                rename(
                    t.clone(),
                    &format!("{prefix}-{i:05}"),
                    &ns(i),
                    &uid(kind, i),
                )
            })
            .collect()
    };
    vec![
        ("apps", "deployments", deployments),
        ("apps", "replicasets", replicasets),
        ("apps", "statefulsets", many(&statefulset, n_sts, 4, "db")),
        ("apps", "daemonsets", many(&daemonset, n_ds, 5, "agent")),
        ("batch", "jobs", many(&job, n_job, 6, "job")),
        ("batch", "cronjobs", many(&cronjob, n_cron, 7, "cron")),
        ("", "pods", pod_list),
    ]
}
