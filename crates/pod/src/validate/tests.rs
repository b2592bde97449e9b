//! Validation tests: whole manifests in, kubectl-style messages out.

use super::*;
use crate::manifest::parse_manifest;

fn pod(yaml: &str) -> Pod {
    parse_manifest("t.yaml", yaml).unwrap().remove(0).pod
}

fn errs(yaml: &str) -> Vec<String> {
    validate_pod(&pod(yaml), &Options::default())
        .errors
        .iter()
        .map(|e| e.to_string())
        .collect()
}

const HEAD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n";

fn spec_errs(body: &str) -> Vec<String> {
    errs(&format!("{HEAD}{body}"))
}

#[test]
fn valid_pod_has_no_errors() {
    let y = format!(
        "{HEAD}  restartPolicy: OnFailure\n  dnsPolicy: ClusterFirst\n  volumes:\n  - name: data\n    emptyDir: {{}}\n  - name: host\n    hostPath: {{path: /tmp, type: Directory}}\n  initContainers:\n  - name: init\n    image: busybox\n  - name: side\n    image: busybox\n    restartPolicy: Always\n    readinessProbe: {{exec: {{command: ['true']}}}}\n  containers:\n  - name: web\n    image: nginx:1.25\n    imagePullPolicy: IfNotPresent\n    ports: [{{name: http, containerPort: 80}}]\n    env: [{{name: A, value: x}}, {{name: P, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]\n    resources: {{requests: {{cpu: 100m, memory: 64Mi}}, limits: {{cpu: '1', memory: 128Mi}}}}\n    volumeMounts: [{{name: data, mountPath: /data}}, {{name: host, mountPath: /host, subPath: x/y}}]\n    livenessProbe: {{httpGet: {{port: http, path: /}}, successThreshold: 1}}\n    readinessProbe: {{tcpSocket: {{port: 80}}, successThreshold: 3}}\n    lifecycle: {{preStop: {{exec: {{command: [sh, -c, 'sleep 1']}}}}}}\n"
    );
    let r = validate_pod(&pod(&y), &Options::default());
    assert_eq!(
        r.errors,
        vec![],
        "{:?}",
        r.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
    assert!(r.warnings.is_empty());
}

#[test]
fn names_and_duplicates() {
    let e = errs("apiVersion: v1\nkind: Pod\nmetadata:\n  name: Web_1\nspec:\n  initContainers:\n  - {name: web, image: b}\n  containers:\n  - {name: a, image: b}\n  - {name: web, image: b}\n  - {name: Bad, image: b}\n");
    assert!(e[0].starts_with("metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain must consist of"), "{e:?}");
    assert!(
        e.contains(&"spec.containers[1].name: Duplicate value: \"web\"".to_string()),
        "{e:?}"
    );
    assert!(
        e.iter().any(|x| x.starts_with(
            "spec.containers[2].name: Invalid value: \"Bad\": a lowercase RFC 1123 label"
        )),
        "{e:?}"
    );
    let e = errs("apiVersion: v1\nkind: Pod\nmetadata: {namespace: x}\nspec:\n  containers: []\n");
    assert_eq!(
        e,
        vec![
            "metadata.name: Required value: name or generateName is required",
            "spec.containers: Required value"
        ]
    );
}

#[test]
fn image_and_enums() {
    let e = spec_errs("  restartPolicy: Sometimes\n  dnsPolicy: Weird\n  containers:\n  - name: a\n    imagePullPolicy: Maybe\n");
    assert_eq!(
        e,
        vec![
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.dnsPolicy: Unsupported value: \"Weird\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
            "spec.containers[0].image: Required value",
            "spec.containers[0].imagePullPolicy: Unsupported value: \"Maybe\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
        ]
    );
    let e = spec_errs("  dnsPolicy: None\n  containers: [{name: a, image: b}]\n");
    assert_eq!(
        e,
        vec!["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]
    );
}

#[test]
fn init_container_rules() {
    let e = spec_errs("  initContainers:\n  - name: i\n    image: b\n    readinessProbe: {exec: {command: [x]}}\n    livenessProbe: {exec: {command: [x]}}\n    startupProbe: {exec: {command: [x]}}\n    lifecycle: {postStart: {exec: {command: [x]}}}\n    restartPolicy: Never\n  containers: [{name: a, image: b, restartPolicy: Always}]\n");
    assert_eq!(
        e,
        vec![
            "spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            "spec.initContainers[0].startupProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            "spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always",
            "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
        ]
    );
}

#[test]
fn probe_rules() {
    let e = spec_errs("  containers:\n  - name: a\n    image: b\n    livenessProbe: {exec: {command: [x]}, successThreshold: 2, periodSeconds: -1}\n    startupProbe: {successThreshold: 3}\n    readinessProbe: {exec: {command: [x]}, tcpSocket: {port: 70000}}\n");
    assert_eq!(
        e,
        vec![
            "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
            "spec.containers[0].readinessProbe.tcpSocket.port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].startupProbe.successThreshold: Invalid value: 3: must be 1",
            "spec.containers[0].startupProbe: Required value: must specify a handler type",
        ]
    );
    let e = spec_errs("  containers:\n  - name: a\n    image: b\n    readinessProbe: {httpGet: {port: metrics}}\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("spec.containers[0].readinessProbe.httpGet.port: Invalid value: \"metrics\": must name a port"), "{e:?}");
}

#[test]
fn ports() {
    let e = spec_errs("  containers:\n  - name: a\n    image: b\n    ports:\n    - {name: http, containerPort: 80}\n    - {name: http, containerPort: 0, protocol: ICMP}\n    - {name: '8080', containerPort: 70000, hostPort: 8080}\n  - name: c\n    image: b\n    ports: [{containerPort: 1, hostPort: 8080}]\n");
    assert_eq!(
        e,
        vec![
            "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
            "spec.containers[0].ports[1].containerPort: Required value",
            "spec.containers[0].ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[0].ports[2].name: Invalid value: \"8080\": must contain at least one letter (a-z)",
            "spec.containers[0].ports[2].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[1].ports[0].hostPort: Duplicate value: \"8080/TCP\"",
        ]
    );
}

#[test]
fn resources() {
    let e = spec_errs("  containers:\n  - name: a\n    image: b\n    resources:\n      limits: {cpu: '1', memory: 1GB, foo: '1'}\n      requests: {cpu: '2', memory: '-1'}\n");
    assert_eq!(
        e,
        vec![
            "spec.containers[0].resources.limits[foo]: Invalid value: \"foo\": must be a standard resource type or fully qualified",
            "spec.containers[0].resources.limits[memory]: Invalid value: \"1GB\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            "spec.containers[0].resources.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
        ]
    );
    let ok = spec_errs("  containers:\n  - name: a\n    image: b\n    resources: {limits: {cpu: 500m}, requests: {cpu: '0.5'}}\n");
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn volumes_and_mounts() {
    let e = spec_errs("  volumes:\n  - name: data\n    emptyDir: {}\n  - name: data\n    hostPath: {path: rel}\n  - name: cm\n    configMap: {name: x}\n  - name: none\n  containers:\n  - name: a\n    image: b\n    volumeMounts:\n    - {name: data, mountPath: /d}\n    - {name: data, mountPath: /d/}\n    - {name: nope, mountPath: rel, subPath: ../x}\n    - {name: data, mountPath: ''}\n");
    assert_eq!(
        e,
        vec![
            "spec.volumes[1].hostPath.path: Invalid value: \"rel\": must be an absolute path",
            "spec.volumes[1].name: Duplicate value: \"data\"",
            "spec.volumes[2].configMap: Forbidden: podrun supports only emptyDir and hostPath volumes (no Kubernetes API server)",
            "spec.volumes[3]: Required value: must specify a volume type",
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d/\": must be unique",
            "spec.containers[0].volumeMounts[2].name: Not found: \"nope\"",
            "spec.containers[0].volumeMounts[2].mountPath: Invalid value: \"rel\": must be an absolute path",
            "spec.containers[0].volumeMounts[2].subPath: Invalid value: \"../x\": must not contain '..'",
            "spec.containers[0].volumeMounts[3].mountPath: Required value",
        ]
    );
}

#[test]
fn env_rules() {
    let e = spec_errs("  containers:\n  - name: a\n    image: b\n    env:\n    - {name: 'A=B', value: x}\n    - {name: X, value: v, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n    - {name: Y, valueFrom: {fieldRef: {fieldPath: spec.bogus}}}\n    - {name: Z, valueFrom: {secretKeyRef: {name: s, key: k}}}\n    - {name: L, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}\n    envFrom: [{configMapRef: {name: c}}, {prefix: X_}]\n");
    assert_eq!(e.len(), 6, "{e:?}");
    assert!(e[0].starts_with(
        "spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name"
    ));
    assert_eq!(e[1], "spec.containers[0].env[1].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty");
    assert!(e[2].starts_with("spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.bogus\": supported values: \"metadata.name\""));
    assert_eq!(e[3], "spec.containers[0].env[3].valueFrom.secretKeyRef: Forbidden: not supported by podrun (no Kubernetes API server)");
    assert_eq!(e[4], "spec.containers[0].envFrom[0].configMapRef: Forbidden: not supported by podrun (no Kubernetes API server)");
    assert_eq!(e[5], "spec.containers[0].envFrom[1]: Required value: must specify one of: `configMapRef` or `secretRef`");
}

#[test]
fn ignored_fields_warn_or_fail_in_strict() {
    let y = format!("{HEAD}  nodeSelector: {{disk: ssd}}\n  affinity: {{}}\n  serviceAccountName: sa\n  containers:\n  - name: a\n    image: b\n    resources: {{limits: {{nvidia.com/gpu: '1'}}}}\n");
    let p = pod(&y);
    let r = validate_pod(&p, &Options::default());
    assert!(r.is_ok());
    let w: Vec<String> = r.warnings.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "spec.containers[0].resources.limits[nvidia.com/gpu]: ignored: extended resources are not allocated by podrun",
            "spec.nodeSelector: ignored: podrun runs pods on this host only",
            "spec.affinity: ignored: podrun runs pods on this host only",
            "spec.serviceAccountName: ignored: podrun has no Kubernetes API server or service accounts",
        ]
    );
    let strict = validate_pod(&p, &Options { strict: true });
    assert_eq!(strict.errors.len(), 4);
    assert!(strict.warnings.is_empty());
    assert_eq!(
        unknown_field_warnings(&["spec.foo".into()])[0].to_string(),
        "spec.foo: ignored: unknown field"
    );
}

#[test]
fn security_context_rules() {
    let e = spec_errs("  hostNetwork: true\n  securityContext: {runAsUser: -1, fsGroup: 3000000000, supplementalGroups: [1, -2], seccompProfile: {type: Localhost}}\n  containers:\n  - name: a\n    image: b\n    ports: [{containerPort: 80, hostPort: 8080}]\n    securityContext: {allowPrivilegeEscalation: false, privileged: true, procMount: Weird, runAsGroup: -3}\n");
    assert_eq!(
        e,
        vec![
            "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
            "spec.securityContext.fsGroup: Invalid value: 3000000000: must be between 0 and 2147483647, inclusive",
            "spec.securityContext.supplementalGroups[1]: Invalid value: -2: must be between 0 and 2147483647, inclusive",
            "spec.securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost",
            "spec.containers[0].securityContext.runAsGroup: Invalid value: -3: must be between 0 and 2147483647, inclusive",
            "spec.containers[0].securityContext.procMount: Unsupported value: \"Weird\": supported values: \"Default\", \"Unmasked\"",
            "spec.containers[0].securityContext: Invalid value: {\"allowPrivilegeEscalation\":false,\"privileged\":true,\"procMount\":\"Weird\",\"runAsGroup\":-3}: cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            "spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true",
        ]
    );
    let ok = spec_errs("  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}\n  containers:\n  - name: a\n    image: b\n    securityContext: {allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: {drop: [ALL]}}\n");
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn missing_spec_and_other_pod_fields() {
    let e = errs(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: Bad, labels: {'bad key!': v}}\n",
    );
    assert!(
        e[0].starts_with("metadata.namespace: Invalid value: \"Bad\""),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("metadata.labels: Invalid value: \"bad key!\": name part must consist"),
        "{e:?}"
    );
    assert_eq!(e.last().unwrap(), "spec: Required value");
    let e = spec_errs("  terminationGracePeriodSeconds: -5\n  activeDeadlineSeconds: 0\n  os: {name: windows}\n  containers: [{name: a, image: ' b'}]\n");
    assert_eq!(
        e,
        vec![
            "spec.terminationGracePeriodSeconds: Invalid value: -5: must be greater than or equal to 0",
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            "spec.os.name: Unsupported value: \"windows\": supported values: \"linux\"",
            "spec.containers[0].image: Invalid value: \" b\": must not have leading or trailing whitespace",
        ]
    );
}
