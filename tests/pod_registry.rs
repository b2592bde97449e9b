//! A pod whose image is pulled from a real registry (Debian's docker-registry
//! on 127.0.0.1, plain HTTP) at `create`, per imagePullPolicy.

#[path = "../integration/registry/harness.rs"]
mod harness;
mod podharness;

use podharness::PodEnv;
use std::time::Duration;

#[test]
fn always_pulls_from_a_registry_named_insecure() {
    let reg = harness::Registry::start(None);
    let layout = harness::scratch_dir("pod-pull-layout");
    harness::busybox_layout(&layout, "bb", &[], None);
    reg.push(&format!("oci:{}:bb", layout.display()), "pods/bb:1", false);
    let image = reg.reference("pods/bb:1");
    let env = PodEnv::new("pull");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pulled\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: {image}\n    imagePullPolicy: Always\n    command: [sh, -c, 'echo from-registry']\n"
    );
    let p = env.manifest("pulled.yaml", &yaml);
    let p = p.to_str().unwrap();
    // HTTPS is the default: a plain-HTTP registry must be named.
    let r = env.run(&["create", "-f", p]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("ErrImagePull") && err.contains(&image),
        "{err}"
    );
    assert!(
        !env.root.join("pods/default_pulled").exists(),
        "nothing created"
    );
    env.ok(&["create", "-f", p, "--insecure-registry", &reg.addr]);
    env.wait_for("pulled", Duration::from_secs(30), "Succeeded", |v| {
        PodEnv::phase(v) == "Succeeded"
    });
    assert_eq!(env.logs("pulled", "c"), "from-registry\n");
    let d = env.ok(&["describe", "pod", "pulled"]);
    assert!(
        d.contains("Pulling") && d.contains(&format!("Successfully pulled image \"{image}\"")),
        "{d}"
    );
    let _ = std::fs::remove_dir_all(&layout);
}
