//! Synthetic clusters in kubectl's `List` shape, for benchmarks and scale
//! tests: `nodes` nodes (3 control-plane), `pods_per_node` pods per node (one
//! DaemonSet pod, the rest Deployment replicas) and `pdbs` PDBs spread over
//! namespaces of ten. Deterministic: the same arguments give the same text.

use std::fmt::Write as _;

/// kubectl-style JSON (`kubectl get nodes,pods,pdb -A -o json`) of a synthetic cluster.
pub fn kubectl_json(nodes: usize, pods_per_node: usize, pdbs: usize, version: &str) -> String {
    let mut o = String::with_capacity(nodes * pods_per_node * 900);
    o.push_str("{\"apiVersion\":\"v1\",\"items\":[");
    let mut first = true;
    let mut sep = |o: &mut String| {
        if !first {
            o.push(',');
        }
        first = false;
    };
    let node_name = |i: usize| {
        if i < 3 {
            format!("cp-{}", i + 1)
        } else {
            format!("node-{}", i - 2)
        }
    };
    for i in 0..nodes {
        sep(&mut o);
        let name = node_name(i);
        let role = if i < 3 {
            ",\"node-role.kubernetes.io/control-plane\":\"\""
        } else {
            ""
        };
        let _ = write!(
            o,
            "{{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{{\"name\":\"{name}\",\"uid\":\"u-{i}\",\"resourceVersion\":\"{i}\",\"labels\":{{\"kubernetes.io/hostname\":\"{name}\",\"kubernetes.io/os\":\"linux\",\"topology.kubernetes.io/zone\":\"zone-{z}\"{role}}}}},\"spec\":{{\"podCIDR\":\"10.0.0.0/24\"}},\"status\":{{\"conditions\":[{{\"type\":\"MemoryPressure\",\"status\":\"False\"}},{{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\"}}],\"nodeInfo\":{{\"kubeletVersion\":\"v{version}\",\"containerRuntimeVersion\":\"containerd://1.7.27\",\"osImage\":\"Debian GNU/Linux 12\"}}}}}}",
            z = i % 3
        );
    }
    // Static control-plane pods.
    for i in 0..3.min(nodes) {
        for comp in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            sep(&mut o);
            let node = node_name(i);
            let _ = write!(
                o,
                "{{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{{\"name\":\"{comp}-{node}\",\"namespace\":\"kube-system\",\"labels\":{{\"component\":\"{comp}\",\"tier\":\"control-plane\"}},\"ownerReferences\":[{{\"kind\":\"Node\",\"name\":\"{node}\",\"controller\":true}}]}},\"spec\":{{\"nodeName\":\"{node}\",\"containers\":[{{\"name\":\"{comp}\",\"image\":\"registry.k8s.io/{comp}:v{version}\"}}]}},\"status\":{{\"phase\":\"Running\"}}}}"
            );
        }
    }
    let namespaces = pdbs.div_ceil(10).max(1);
    let apps = pdbs.max(1);
    let mut pod = 0usize;
    for i in 3.min(nodes)..nodes {
        let node = node_name(i);
        for k in 0..pods_per_node {
            sep(&mut o);
            if k == 0 {
                let _ = write!(
                    o,
                    "{{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{{\"name\":\"agent-{i}\",\"namespace\":\"kube-system\",\"labels\":{{\"app\":\"agent\"}},\"ownerReferences\":[{{\"kind\":\"DaemonSet\",\"name\":\"agent\",\"controller\":true}}]}},\"spec\":{{\"nodeName\":\"{node}\",\"containers\":[{{\"name\":\"agent\",\"image\":\"agent:1\"}}]}},\"status\":{{\"phase\":\"Running\"}}}}"
                );
                continue;
            }
            let app = pod % apps;
            let ns = app % namespaces;
            let _ = write!(
                o,
                "{{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{{\"name\":\"app{app}-{pod}\",\"namespace\":\"ns-{ns}\",\"labels\":{{\"app\":\"app{app}\",\"pod-template-hash\":\"abc\"}},\"ownerReferences\":[{{\"kind\":\"ReplicaSet\",\"name\":\"app{app}-abc\",\"controller\":true}}]}},\"spec\":{{\"nodeName\":\"{node}\",\"containers\":[{{\"name\":\"app\",\"image\":\"app:1\"}}]}},\"status\":{{\"phase\":\"Running\",\"conditions\":[{{\"type\":\"Ready\",\"status\":\"True\"}}]}}}}"
            );
            pod += 1;
        }
    }
    for app in 0..pdbs {
        sep(&mut o);
        let ns = app % namespaces;
        let _ = write!(
            o,
            "{{\"apiVersion\":\"policy/v1\",\"kind\":\"PodDisruptionBudget\",\"metadata\":{{\"name\":\"app{app}\",\"namespace\":\"ns-{ns}\",\"generation\":1}},\"spec\":{{\"maxUnavailable\":\"10%\",\"selector\":{{\"matchLabels\":{{\"app\":\"app{app}\"}}}}}},\"status\":{{\"disruptionsAllowed\":{d},\"currentHealthy\":90,\"desiredHealthy\":81,\"expectedPods\":90,\"observedGeneration\":1}}}}",
            d = 1 + app % 9
        );
    }
    o.push_str("],\"kind\":\"List\",\"metadata\":{\"resourceVersion\":\"\"}}");
    o
}
