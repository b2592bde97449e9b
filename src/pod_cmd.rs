//! The pod face: `podrun create pod.yaml`, `get`, `describe`, `logs`, `exec`,
//! `delete`, `wait`. Parsing, dispatch and printing only; the work is in
//! crates/pod (validation, state dir, supervisor daemon) and crates/image.

use crate::GlobalOpts;
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use podrun_pod::display::{all_running, condition_is, pod_row, stuck_reason};
use podrun_pod::events::{EventLog, EventType};
use podrun_pod::k8s_openapi::api::core::v1::Pod;
use podrun_pod::podstate::{self, files, PodView, RunInfo};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "podrun",
    about = "podrun's pod commands (Kubernetes Pod manifests on this host)"
)]
pub struct PodCli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(flatten)]
    pub pod: PodOpts,
    #[command(subcommand)]
    pub cmd: PodCommand,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PodOpts {
    /// Image store root
    #[arg(long = "image-root", env = "PODRUN_IMAGE_ROOT", default_value = podrun_image::DEFAULT_ROOT, global = true)]
    pub image_root: PathBuf,
    /// Root of the pods' CRI log files
    #[arg(
        long = "pod-log-dir",
        env = "PODRUN_POD_LOG_DIR",
        default_value = "/var/log/podrun/pods",
        global = true
    )]
    pub log_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum PodCommand {
    /// Create the pods of a Kubernetes manifest (YAML or JSON; `-` for stdin)
    Create {
        /// Manifest file
        #[arg(short = 'f', long = "filename")]
        filename: Option<String>,
        /// Manifest file (same as -f)
        file: Option<String>,
        /// Wait until every container is Running (`--wait=ready`: until the pod is Ready)
        #[arg(long, num_args = 0..=1, default_missing_value = "running", value_parser = ["running", "ready"])]
        wait: Option<String>,
        /// How long --wait waits (e.g. 30s, 2m)
        #[arg(long, default_value = "60s")]
        timeout: String,
        /// Unknown or unimplemented fields: warn (default) or strict (error)
        #[arg(long, default_value = "warn", value_parser = ["warn", "strict", "true", "false", "ignore"])]
        validate: String,
        /// Namespace (default: the manifest's, else "default")
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// pids.max of each pod's cgroup (0: unlimited)
        #[arg(long = "pids-limit", default_value_t = podrun_pod::podcgroup::DEFAULT_PIDS_LIMIT)]
        pids_limit: i64,
        /// Pull from this registry (HOST[:PORT]) over plain HTTP (repeatable)
        #[arg(long = "insecure-registry", value_name = "HOST")]
        insecure_registry: Vec<String>,
    },
    /// List pods, or show one (-o json|yaml|wide|name)
    Get {
        /// `pods` (or `pod`, `po`)
        resource: String,
        names: Vec<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// All namespaces
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
        #[arg(short = 'o', long = "output", value_parser = ["wide", "json", "yaml", "name"])]
        output: Option<String>,
    },
    /// Show a pod's details and events, kubectl-style
    Describe {
        /// `pod` (or `pods`, `po`), or the pod name
        resource: String,
        name: Option<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Print a container's logs
    Logs {
        pod: String,
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Follow until the container stops
        #[arg(short = 'f', long)]
        follow: bool,
        /// The previous (terminated) instance of the container
        #[arg(short = 'p', long)]
        previous: bool,
        /// Prefix each line with its RFC3339Nano timestamp
        #[arg(long)]
        timestamps: bool,
        /// Only the last N lines
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        tail: i64,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Run a command in a container of a pod
    Exec {
        pod: String,
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Pass stdin to the command
        #[arg(short = 'i', long)]
        stdin: bool,
        /// Allocate a terminal
        #[arg(short = 't', long)]
        tty: bool,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Delete pods: preStop, SIGTERM, grace period, SIGKILL, then remove everything
    Delete {
        /// [pod|pods] NAME...
        #[arg(required = true)]
        args: Vec<String>,
        /// Seconds before SIGKILL (default: the pod's terminationGracePeriodSeconds)
        #[arg(long = "grace-period", default_value_t = -1, allow_negative_numbers = true)]
        grace_period: i64,
        /// Kill at once and remove everything, even if the supervisor is gone
        #[arg(long)]
        force: bool,
        /// Succeed if the pod does not exist
        #[arg(long = "ignore-not-found")]
        ignore_not_found: bool,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Wait for a condition on a pod: --for=condition=Ready | --for=delete
    Wait {
        /// pod/NAME (or NAME)
        target: Vec<String>,
        #[arg(long = "for")]
        for_: String,
        #[arg(long, default_value = "30s")]
        timeout: String,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// CPU and memory of pods (or of their containers), from their cgroups
    Top {
        /// `pods` (or `pod`, `po`)
        resource: String,
        name: Option<String>,
        /// One line per container
        #[arg(long)]
        containers: bool,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
    },
    /// Internal: the pod supervisor daemon
    #[command(name = "__supervise", hide = true)]
    Supervise { pod_dir: PathBuf },
}

/// Does this command line name a pod verb (rather than the OCI command of the same name)?
pub fn is_pod_invocation(args: &[String]) -> bool {
    let mut root = std::env::var("PODRUN_ROOT").unwrap_or_else(|_| "/run/podrun".into());
    let mut i = 0;
    let mut verb: Option<&str> = None;
    let mut rest: Vec<&str> = Vec::new();
    while i < args.len() {
        let a = args[i].as_str();
        if verb.is_none() {
            match a {
                "--root" | "--log" | "--log-format" | "--criu" | "--image-root"
                | "--pod-log-dir" => {
                    if a == "--root" {
                        if let Some(v) = args.get(i + 1) {
                            root = v.clone();
                        }
                    }
                    i += 2;
                    continue;
                }
                _ if a.starts_with("--root=") => root = a["--root=".len()..].to_string(),
                _ if a.starts_with('-') => {}
                v => verb = Some(v),
            }
        } else {
            rest.push(a);
        }
        i += 1;
    }
    let Some(verb) = verb else { return false };
    let root = Path::new(&root);
    let namespace = rest
        .windows(2)
        .find(|w| w[0] == "-n" || w[0] == "--namespace")
        .map(|w| w[1].to_string())
        .unwrap_or_else(|| "default".into());
    // The first positional argument, skipping the values of flags that take one.
    let first_positional = || {
        let mut skip = false;
        for a in &rest {
            if skip {
                skip = false;
                continue;
            }
            if matches!(
                *a,
                "-n" | "--namespace"
                    | "-c"
                    | "--container"
                    | "--grace-period"
                    | "--timeout"
                    | "-f"
                    | "--filename"
                    | "-b"
                    | "--bundle"
                    | "--pid-file"
                    | "--console-socket"
                    | "--process"
                    | "-p"
                    | "--cwd"
                    | "-u"
                    | "--user"
                    | "-e"
                    | "--env"
                    | "--cap"
                    | "--preserve-fds"
                    | "--tail"
                    | "-o"
                    | "--for"
            ) {
                skip = true;
                continue;
            }
            if *a == "-" || !a.starts_with('-') {
                return Some(*a);
            }
        }
        None
    };
    let oci_exists =
        |id: &str| podrun_container::state::StateEntry::new(root, id).is_ok_and(|e| e.exists());
    let pod_exists = |name: &str| {
        podstate::pod_dir(root, &namespace, name)
            .join(files::POD)
            .exists()
    };
    match verb {
        "get" | "describe" | "logs" | "wait" | "top" | "__supervise" => true,
        "create" => {
            if rest
                .iter()
                .any(|a| *a == "-f" || a.starts_with("--filename") || a.starts_with("-f"))
            {
                return true;
            }
            if rest.iter().any(|a| *a == "-b" || a.starts_with("--bundle")) {
                return false;
            }
            match first_positional() {
                Some(p) => {
                    p == "-"
                        || [".yaml", ".yml", ".json"].iter().any(|s| p.ends_with(s))
                        || Path::new(p).is_file()
                }
                None => false,
            }
        }
        "delete" => match first_positional() {
            Some("pod" | "pods" | "po") => true,
            Some(n) => {
                !oci_exists(n)
                    && (pod_exists(n)
                        || rest.iter().any(|a| {
                            *a == "-n"
                                || a.starts_with("--namespace")
                                || a.starts_with("--grace-period")
                                || *a == "--ignore-not-found"
                        }))
            }
            None => false,
        },
        "exec" => {
            let Some(n) = first_positional() else {
                return false;
            };
            !oci_exists(n)
                && (pod_exists(n)
                    || rest
                        .iter()
                        .any(|a| *a == "-c" || a.starts_with("--container")))
        }
        _ => false,
    }
}

/// Parses "30s", "2m", "1h", "500ms" or plain seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (num, mult_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        (s, 1000.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid duration {s:?} (expected e.g. 30s, 2m, 500ms)"))?;
    if v < 0.0 || !v.is_finite() {
        bail!("invalid duration {s:?}: must not be negative");
    }
    Ok(Duration::from_millis((v * mult_ms) as u64))
}

pub fn run(cli: PodCli) -> anyhow::Result<i32> {
    let g = &cli.global;
    let o = &cli.pod;
    match cli.cmd {
        PodCommand::Create {
            filename,
            file,
            wait,
            timeout,
            validate,
            namespace,
            pids_limit,
            insecure_registry,
        } => {
            let f = filename.or(file).ok_or_else(|| {
                anyhow::anyhow!("create: no manifest given (podrun create -f pod.yaml; for an OCI container: podrun create <id> --bundle DIR)")
            })?;
            create(
                g,
                o,
                &insecure_registry,
                (pids_limit > 0).then_some(pids_limit),
                &f,
                wait.as_deref(),
                parse_duration(&timeout)?,
                validate == "strict",
                namespace.as_deref(),
            )
        }
        PodCommand::Get {
            resource,
            names,
            namespace,
            all_namespaces,
            output,
        } => get(
            g,
            &resource,
            &names,
            namespace.as_deref(),
            all_namespaces,
            output.as_deref(),
        ),
        PodCommand::Describe {
            resource,
            name,
            namespace,
        } => {
            let name = match (resource.as_str(), name) {
                ("pod" | "pods" | "po", Some(n)) => n,
                ("pod" | "pods" | "po", None) => {
                    bail!("describe: which pod? (podrun describe pod NAME)")
                }
                (n, None) => n.to_string(),
                (r, Some(_)) => bail!("describe: unknown resource type {r:?} (podrun knows pods)"),
            };
            let ns = namespace.as_deref().unwrap_or("default");
            let v = find(&g.root, ns, &name)?;
            print!("{}", crate::pod_describe::describe(&v));
            Ok(0)
        }
        PodCommand::Logs {
            pod,
            container,
            follow,
            previous,
            timestamps,
            tail,
            namespace,
        } => logs(
            g,
            &pod,
            container.as_deref(),
            namespace.as_deref().unwrap_or("default"),
            follow,
            previous,
            timestamps,
            tail,
        ),
        PodCommand::Exec {
            pod,
            container,
            stdin,
            tty,
            namespace,
            command,
        } => exec(
            g,
            &pod,
            container.as_deref(),
            namespace.as_deref().unwrap_or("default"),
            stdin,
            tty,
            command,
        ),
        PodCommand::Delete {
            args,
            grace_period,
            force,
            ignore_not_found,
            namespace,
        } => {
            let names: Vec<&String> = match args.first().map(|s| s.as_str()) {
                Some("pod" | "pods" | "po") => args.iter().skip(1).collect(),
                _ => args.iter().collect(),
            };
            if names.is_empty() {
                bail!("delete: which pod? (podrun delete pod NAME)");
            }
            let ns = namespace.as_deref().unwrap_or("default");
            let grace = (grace_period >= 0).then_some(grace_period as u64);
            let mut code = 0;
            for n in names {
                let n = n.strip_prefix("pod/").unwrap_or(n);
                match delete(g, ns, n, grace, force) {
                    Ok(()) => println!("pod \"{n}\" deleted"),
                    Err(e)
                        if ignore_not_found
                            && e.downcast_ref::<podstate::PodStateError>()
                                .is_some_and(|e| {
                                    matches!(e, podstate::PodStateError::NotFound { .. })
                                }) => {}
                    Err(e) => {
                        crate::logging::report_error(&e);
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        PodCommand::Wait {
            target,
            for_,
            timeout,
            namespace,
        } => {
            let name = match target.as_slice() {
                [t] => t
                    .strip_prefix("pod/")
                    .or(t.strip_prefix("pods/"))
                    .unwrap_or(t)
                    .to_string(),
                [r, n] if matches!(r.as_str(), "pod" | "pods" | "po") => n.clone(),
                _ => bail!("wait: expected pod/NAME"),
            };
            wait(
                g,
                namespace.as_deref().unwrap_or("default"),
                &name,
                &for_,
                parse_duration(&timeout)?,
            )
        }
        PodCommand::Top {
            resource,
            name,
            containers,
            namespace,
            all_namespaces,
        } => {
            if !matches!(resource.as_str(), "pod" | "pods" | "po") {
                bail!("top: unknown resource type {resource:?} (podrun knows pods)");
            }
            top(
                g,
                name.as_deref(),
                namespace.as_deref().unwrap_or("default"),
                all_namespaces,
                containers,
            )
        }
        PodCommand::Supervise { pod_dir } => Ok(podrun_pod::daemon::supervise_main(&pod_dir)),
    }
}

fn find(root: &Path, ns: &str, name: &str) -> anyhow::Result<PodView> {
    Ok(podstate::find(root, ns, name)?)
}

/// Now, in whole seconds (Kubernetes' metav1.Time resolution).
fn now_ts() -> podrun_pod::k8s_openapi::jiff::Timestamp {
    let t = podrun_pod::crilog::now();
    podrun_pod::k8s_openapi::jiff::Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

struct Prepared {
    pod: Pod,
    images: std::collections::BTreeMap<String, String>,
    events: EventLog,
}

/// Resolves (pulling per imagePullPolicy) every container's image.
fn resolve_images(
    o: &PodOpts,
    insecure: &[String],
    pod: &Pod,
    events: &mut EventLog,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let store = podrun_image::Store::open(&o.image_root)
        .with_context(|| format!("image store {}", o.image_root.display()))?;
    let spec = pod.spec.as_ref().expect("validated pod has a spec");
    let mut out = std::collections::BTreeMap::new();
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (true, c))
        .chain(spec.containers.iter().map(|c| (false, c)));
    let pname = pod.metadata.name.as_deref().unwrap_or("");
    for (init, c) in all {
        let obj = podrun_pod::events::container_object(init, &c.name);
        let image = c.image.as_deref().unwrap_or_default();
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| podrun_pod::defaults::default_pull_policy(image).to_string());
        let local = store.resolve(image).ok();
        let img = match (policy.as_str(), local) {
            ("Never", Some(i)) | ("IfNotPresent", Some(i)) => {
                events.normal(
                    "Pulled",
                    &obj,
                    format!("Container image \"{image}\" already present on machine"),
                );
                i
            }
            ("Never", None) => {
                events.warning(
                    "ErrImageNeverPull",
                    &obj,
                    format!("Container image \"{image}\" is not present with pull policy of Never"),
                );
                bail!("pod {pname:?}: container {:?}: ErrImageNeverPull: image {image:?} is not in the store ({}) and imagePullPolicy is Never (load it with: podrun image load -i ARCHIVE)", c.name, o.image_root.display());
            }
            (p, _) => {
                events.normal("Pulling", &obj, format!("Pulling image \"{image}\""));
                let t = Instant::now();
                let domain = podrun_image::reference::Reference::parse(image)
                    .map(|r| r.domain)
                    .unwrap_or_default();
                let opts = podrun_image::PullOptions {
                    insecure: insecure.contains(&domain),
                    ..Default::default()
                };
                match store.pull(image, &opts) {
                    Ok(i) => {
                        events.normal(
                            "Pulled",
                            &obj,
                            format!(
                                "Successfully pulled image \"{image}\" in {:.3}s",
                                t.elapsed().as_secs_f64()
                            ),
                        );
                        i
                    }
                    Err(e) => {
                        let hint = if p == "Always" {
                            format!(" (imagePullPolicy is Always{}; to use the local image set imagePullPolicy: IfNotPresent)", if c.image_pull_policy.is_none() { ", the default for an untagged or :latest image" } else { "" })
                        } else {
                            String::new()
                        };
                        bail!(
                            "pod {pname:?}: container {:?}: ErrImagePull: {image}: {e}{hint}",
                            c.name
                        );
                    }
                }
            }
        };
        out.insert(c.name.clone(), img.id.to_string());
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn create(
    g: &GlobalOpts,
    o: &PodOpts,
    insecure: &[String],
    pids_limit: Option<i64>,
    file: &str,
    wait_for: Option<&str>,
    timeout: Duration,
    strict: bool,
    namespace: Option<&str>,
) -> anyhow::Result<i32> {
    let (label, text) = if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the manifest from stdin")?;
        ("<stdin>".to_string(), s)
    } else {
        let t =
            std::fs::read_to_string(file).with_context(|| format!("reading manifest {file}"))?;
        (file.to_string(), t)
    };
    let docs = podrun_pod::manifest::parse_manifest(&label, &text)?;
    // Validate everything first: nothing is created if any pod is invalid.
    let mut failed = false;
    let mut pods = Vec::new();
    for d in docs {
        let mut pod = d.pod;
        let where_ = format!("{label}: document {}", d.document);
        if let (Some(flag), Some(m)) = (namespace, pod.metadata.namespace.as_deref()) {
            if flag != m {
                eprintln!("error: {where_}: the namespace from the provided object {m:?} does not match the namespace {flag:?}");
                failed = true;
                continue;
            }
        }
        let mut report =
            podrun_pod::validate::validate_pod(&pod, &podrun_pod::validate::Options { strict });
        let unknown = podrun_pod::validate::unknown_field_warnings(&d.unknown_fields);
        if strict {
            report.errors.extend(unknown);
        } else {
            report.warnings.extend(unknown);
        }
        let pname = pod.metadata.name.clone().unwrap_or_default();
        for w in &report.warnings {
            eprintln!("Warning: {where_}: pod {pname:?}: {w}");
        }
        if !report.is_ok() {
            for e in &report.errors {
                eprintln!("error: {where_}: pod {pname:?}: {e}");
            }
            failed = true;
            continue;
        }
        podrun_pod::defaults::apply_defaults(&mut pod);
        if pod.metadata.namespace.is_none() {
            pod.metadata.namespace = Some(namespace.unwrap_or("default").to_string());
        }
        pods.push(pod);
    }
    if failed {
        bail!("{label}: invalid manifest, no pod created");
    }
    let mut prepared = Vec::new();
    for mut pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        if podstate::pod_dir(&g.root, &ns, &name)
            .join(files::POD)
            .exists()
        {
            bail!(
                "pods {name:?} already exists in namespace {ns:?} (podrun delete pod {name}{})",
                if ns == "default" {
                    String::new()
                } else {
                    format!(" -n {ns}")
                }
            );
        }
        pod.metadata.uid = Some(podstate::new_uid());
        pod.metadata.creation_timestamp =
            Some(podrun_pod::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now_ts()));
        let mut events = EventLog::default();
        events.normal(
            "Scheduled",
            "",
            format!("Successfully assigned {ns}/{name} to {}", hostname()),
        );
        let images = resolve_images(o, insecure, &pod, &mut events)?;
        prepared.push(Prepared {
            pod,
            images,
            events,
        });
    }
    let backoff_scale = std::env::var("PODRUN_BACKOFF_SCALE")
        .ok()
        .map(|s| {
            podrun_pod::backoff::parse_scale(&s).ok_or_else(|| {
                anyhow::anyhow!("PODRUN_BACKOFF_SCALE={s:?}: expected a positive number")
            })
        })
        .transpose()?
        .unwrap_or(1.0);
    let mut created = Vec::new();
    for p in prepared {
        let view = start_pod(g, o, p, backoff_scale, pids_limit)?;
        println!("pod/{} created", view.0);
        created.push(view);
    }
    if let Some(w) = wait_for {
        let deadline = Instant::now() + timeout;
        for (name, ns) in &created {
            wait_until(
                &g.root,
                ns,
                name,
                deadline,
                timeout,
                |p| match w {
                    "ready" => condition_is(p, "Ready", "True"),
                    _ => {
                        all_running(p)
                            || p.status.as_ref().and_then(|s| s.phase.as_deref())
                                == Some("Succeeded")
                    }
                },
                w,
            )?;
        }
    }
    Ok(0)
}

/// Writes the pod's state dir and starts its supervisor; on failure removes everything.
fn start_pod(
    g: &GlobalOpts,
    o: &PodOpts,
    p: Prepared,
    backoff_scale: f64,
    pids_limit: Option<i64>,
) -> anyhow::Result<(String, String)> {
    let ns = p.pod.metadata.namespace.clone().unwrap_or_default();
    let name = p.pod.metadata.name.clone().unwrap_or_default();
    let uid = p.pod.metadata.uid.clone().unwrap_or_default();
    let pods_root = podstate::pods_root(&g.root);
    std::fs::create_dir_all(&pods_root)
        .with_context(|| format!("creating {}", pods_root.display()))?;
    let dir = podstate::pod_dir(&g.root, &ns, &name);
    if let Err(e) = std::fs::create_dir(&dir) {
        if e.kind() == std::io::ErrorKind::AlreadyExists && !dir.join(files::POD).exists() {
            // The leftover of a create that died before writing pod.json.
            let _ = podstate::cleanup(&dir, true, false, true);
            std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        } else if e.kind() == std::io::ErrorKind::AlreadyExists {
            bail!("pods {name:?} already exists in namespace {ns:?}");
        } else {
            return Err(e).with_context(|| format!("creating {}", dir.display()));
        }
    }
    let cgroup_parent = format!("{}/pod{uid}", podrun_pod::podcgroup::POD_CGROUP_PARENT);
    let run = RunInfo {
        log_root: o.log_dir.clone(),
        image_root: o.image_root.clone(),
        cgroup_dirs: podrun_pod::podcgroup::dirs(&cgroup_parent),
        cgroup_parent,
        images: p.images,
        backoff_scale,
        pids_limit,
    };
    let result = (|| -> anyhow::Result<()> {
        podstate::write_json(&dir.join(files::RUN), &run)?;
        p.events.save(&dir).context("writing events")?;
        // pod.json last: its presence marks a complete pod dir.
        podstate::write_json(&dir.join(files::POD), &p.pod)?;
        let mut args = vec!["--root".to_string(), g.root.display().to_string()];
        if g.debug {
            args.push("--debug".into());
        }
        // The CLI did not re-exec itself sealed (it forks nothing into a
        // container); the supervisor, which does, starts from a sealed view.
        let sealed = podrun_container::selfexe::sealed_exe(&g.root)?;
        podrun_pod::daemon::spawn_supervisor(
            Path::new("/proc/self/exe"),
            sealed.as_ref(),
            &args,
            &dir,
            Duration::from_secs(300),
        )?;
        Ok(())
    })();
    if let Err(mut e) = result {
        // Keep what the supervisor said before its log goes with the pod dir.
        if let Ok(log) = std::fs::read_to_string(dir.join(files::SUPERVISOR_LOG)) {
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            if !tail.is_empty() {
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                e = e.context(format!("supervisor log: {}", tail.join(" | ")));
            }
        }
        if let Err(c) = podstate::cleanup(&dir, true, true, true) {
            eprintln!("podrun: warning: {c}");
        }
        return Err(e.context(format!("pod {ns}/{name}")));
    }
    Ok((name, ns))
}

fn wait_until(
    root: &Path,
    ns: &str,
    name: &str,
    deadline: Instant,
    timeout: Duration,
    done: impl Fn(&Pod) -> bool,
    what: &str,
) -> anyhow::Result<()> {
    let mut sleep = Duration::from_millis(1);
    loop {
        let v = find(root, ns, name)?;
        if done(&v.pod) {
            return Ok(());
        }
        if let Some(r) = stuck_reason(&v.pod) {
            bail!("pod/{name}: will not become {what}: {r} (podrun describe pod {name})");
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {timeout:?} waiting for pod/{name} to be {what} (status: {})",
                pod_row(&v.pod).status
            );
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(50));
    }
}

fn get(
    g: &GlobalOpts,
    resource: &str,
    names: &[String],
    namespace: Option<&str>,
    all: bool,
    output: Option<&str>,
) -> anyhow::Result<i32> {
    let (resource, names): (&str, Vec<String>) = match resource.split_once('/') {
        Some((r, n)) => (
            r,
            std::iter::once(n.to_string())
                .chain(names.iter().cloned())
                .collect(),
        ),
        None => (resource, names.to_vec()),
    };
    if !matches!(resource, "pod" | "pods" | "po") {
        bail!("get: unknown resource type {resource:?} (podrun knows pods)");
    }
    let ns = namespace.unwrap_or("default");
    let mut pods: Vec<PodView> = Vec::new();
    let mut code = 0;
    if names.is_empty() {
        pods = podstate::list(&g.root, if all { None } else { Some(ns) });
        if pods.is_empty() && output.is_none_or(|o| o == "wide") {
            if all {
                eprintln!("No resources found");
            } else {
                eprintln!("No resources found in {ns} namespace.");
            }
            return Ok(0);
        }
    } else {
        for n in &names {
            match podstate::find(&g.root, ns, n) {
                Ok(v) => pods.push(v),
                Err(e) => {
                    eprintln!("Error from server (NotFound): {e}");
                    code = 1;
                }
            }
        }
    }
    let single = names.len() == 1;
    match output {
        Some("json") => {
            let v = if single && pods.len() == 1 {
                serde_json::to_value(&pods[0].pod)?
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": pods.iter().map(|p| &p.pod).collect::<Vec<_>>()})
            };
            if !(single && pods.is_empty()) {
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
        }
        Some("yaml") => {
            if single && pods.len() == 1 {
                print!("{}", serde_norway::to_string(&pods[0].pod)?);
            } else if !(single && pods.is_empty()) {
                let v = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": pods.iter().map(|p| &p.pod).collect::<Vec<_>>()});
                print!("{}", serde_norway::to_string(&v)?);
            }
        }
        Some("name") => {
            for p in &pods {
                println!("pod/{}", p.name());
            }
        }
        o => print!("{}", table(&pods, all, o == Some("wide"))),
    }
    Ok(code)
}

fn age_of(p: &Pod) -> String {
    let created = p
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(0);
    podrun_pod::events::human_age(now_ts().as_second() - created)
}

fn table(pods: &[PodView], with_ns: bool, wide: bool) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut head = vec![];
    if with_ns {
        head.push("NAMESPACE");
    }
    head.extend(["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    if wide {
        head.extend(["IP", "NODE", "SUPERVISOR"]);
    }
    rows.push(head.iter().map(|s| s.to_string()).collect());
    let host = hostname();
    for v in pods {
        let r = pod_row(&v.pod);
        let mut row = Vec::new();
        if with_ns {
            row.push(r.namespace.clone());
        }
        row.extend([
            r.name,
            r.ready,
            r.status,
            r.restarts.to_string(),
            age_of(&v.pod),
        ]);
        if wide {
            row.push(r.ip);
            row.push(host.clone());
            row.push(match (v.supervisor, v.supervisor_alive) {
                (Some(p), true) => p.pid.to_string(),
                _ => "<none>".into(),
            });
        }
        rows.push(row);
    }
    crate::pod_describe::columns(&rows)
}

/// The container a verb is about: -c, else the first app container (with a note if there are several).
fn pick_container(v: &PodView, c: Option<&str>) -> anyhow::Result<(bool, String)> {
    let spec = v.pod.spec.clone().unwrap_or_default();
    let init: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    let apps: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    match c {
        Some(c) if apps.iter().any(|a| a == c) => Ok((false, c.to_string())),
        Some(c) if init.iter().any(|a| a == c) => Ok((true, c.to_string())),
        Some(c) => bail!(
            "container {c} is not valid for pod {}: choose one of: [{}]",
            v.name(),
            init.iter()
                .chain(apps.iter())
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        ),
        None => {
            let first = apps
                .first()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("pod {} has no containers", v.name()))?;
            if apps.len() > 1 {
                eprintln!(
                    "Defaulted container \"{first}\" out of: {}",
                    apps.join(", ")
                );
            }
            Ok((false, first))
        }
    }
}

/// Numbers of the container's log files (`<n>.log`), ascending.
fn log_files(dir: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

fn container_running(v: &PodView, c: &str) -> bool {
    let st = v.pod.status.as_ref();
    st.into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .find(|s| s.name == c)
        .is_some_and(|s| s.state.as_ref().is_some_and(|s| s.running.is_some()))
}

#[allow(clippy::too_many_arguments)]
fn logs(
    g: &GlobalOpts,
    pod: &str,
    container: Option<&str>,
    ns: &str,
    follow: bool,
    previous: bool,
    timestamps: bool,
    tail: i64,
) -> anyhow::Result<i32> {
    let pod = pod.strip_prefix("pod/").unwrap_or(pod);
    let v = find(&g.root, ns, pod)?;
    let (_, c) = pick_container(&v, container)?;
    let dir = v.log_dir().join(&c);
    let nums = log_files(&dir);
    let n = if previous {
        match nums.len() {
            0 | 1 => bail!("previous terminated container {c:?} in pod {pod:?} not found"),
            k => nums[k - 2],
        }
    } else {
        match nums.last() {
            Some(n) => *n,
            None => bail!("container {c:?} in pod {pod:?} has no logs yet (is it waiting to start? podrun describe pod {pod})"),
        }
    };
    let path = dir.join(format!("{n}.log"));
    let mut f =
        std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    let mut asm = podrun_pod::crilog::Reassembler::default();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut pending = Vec::new();
    let mut emit = |buf: &[u8], pending: &mut Vec<u8>, lines: &mut Vec<Vec<u8>>| {
        pending.extend_from_slice(buf);
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            if let Ok(rec) = podrun_pod::crilog::parse_line(&line) {
                if let Some((ts, _, content)) = asm.push(rec) {
                    let mut out = Vec::new();
                    if timestamps {
                        out.extend_from_slice(
                            podrun_pod::crilog::format_rfc3339_nano(ts).as_bytes(),
                        );
                        out.push(b' ');
                    }
                    out.extend_from_slice(&content);
                    out.push(b'\n');
                    lines.push(out);
                }
            }
        }
    };
    emit(&data, &mut pending, &mut lines);
    let skip = if tail >= 0 {
        lines.len().saturating_sub(tail as usize)
    } else {
        0
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for l in &lines[skip..] {
        out.write_all(l)?;
    }
    out.flush()?;
    if !follow || previous {
        return Ok(0);
    }
    drop(out);
    loop {
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        let got = !buf.is_empty();
        let mut ls = Vec::new();
        emit(&buf, &mut pending, &mut ls);
        {
            let mut out = std::io::stdout().lock();
            for l in &ls {
                out.write_all(l)?;
            }
            out.flush()?;
        }
        if !got {
            let Ok(v) = podstate::find(&g.root, ns, pod) else {
                return Ok(0);
            };
            let newer = log_files(&dir).last().is_some_and(|m| *m > n);
            if newer || !container_running(&v, &c) || !v.supervisor_alive {
                // Drain what was written just before it stopped.
                let mut buf = Vec::new();
                f.read_to_end(&mut buf)?;
                let mut ls = Vec::new();
                emit(&buf, &mut pending, &mut ls);
                let mut out = std::io::stdout().lock();
                for l in &ls {
                    out.write_all(l)?;
                }
                return Ok(0);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn exec(
    g: &GlobalOpts,
    pod: &str,
    container: Option<&str>,
    ns: &str,
    stdin: bool,
    tty: bool,
    command: Vec<String>,
) -> anyhow::Result<i32> {
    let pod = pod.strip_prefix("pod/").unwrap_or(pod);
    let v = find(&g.root, ns, pod)?;
    let (_, c) = pick_container(&v, container)?;
    if !container_running(&v, &c) {
        bail!(
            "cannot exec into container {c:?} in pod {pod:?}: it is not running (status: {})",
            pod_row(&v.pod).status
        );
    }
    if !stdin {
        // No -i: the command gets no input (as kubectl exec).
        let null = std::fs::File::open("/dev/null")?;
        nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0)?;
    }
    let rt = podrun_container::Runtime::new(&v.dir.join(files::CONTAINERS));
    let id = format!("{}-{}", v.uid(), c);
    let code = rt.exec(
        &id,
        podrun_container::ExecOptions {
            args: command,
            tty,
            ..Default::default()
        },
    )?;
    Ok(code)
}

fn delete(
    g: &GlobalOpts,
    ns: &str,
    name: &str,
    grace: Option<u64>,
    force: bool,
) -> anyhow::Result<()> {
    let v = podstate::find(&g.root, ns, name)?;
    if v.supervisor_alive && !force {
        let spec_grace = v
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64;
        let g_eff = grace.unwrap_or(spec_grace);
        match podrun_pod::daemon::request(
            &v.dir,
            &podrun_pod::daemon::Request::Stop { grace: Some(g_eff) },
        ) {
            Ok(_) => {
                // The supervisor stops the containers, tears down, then exits.
                let deadline = Instant::now() + Duration::from_secs(g_eff + 30);
                while v.supervisor.is_some_and(|p| p.alive()) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Err(e) => eprintln!("podrun: warning: pod {name}: {e}; removing it forcibly"),
        }
    }
    podstate::cleanup(&v.dir, true, true, true)?;
    Ok(())
}

/// kubectl top's memory format: Ki/Mi/Gi, rounded down.
fn mem_str(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{}Gi", b >> 30),
        b if b >= 1 << 20 => format!("{}Mi", b >> 20),
        b => format!("{}Ki", b >> 10),
    }
}

fn top(
    g: &GlobalOpts,
    name: Option<&str>,
    ns: &str,
    all: bool,
    per_container: bool,
) -> anyhow::Result<i32> {
    let pods = match name {
        Some(n) => vec![find(&g.root, ns, n)?],
        None => podstate::list(&g.root, if all { None } else { Some(ns) }),
    };
    // (pod, container or "", cgroup dirs)
    let mut targets: Vec<(String, String, Vec<PathBuf>)> = Vec::new();
    for v in &pods {
        if per_container {
            let spec = v.pod.spec.clone().unwrap_or_default();
            for c in spec
                .init_containers
                .iter()
                .flatten()
                .chain(spec.containers.iter())
            {
                let dirs = v
                    .run
                    .cgroup_dirs
                    .iter()
                    .map(|d| d.join(&c.name))
                    .collect::<Vec<_>>();
                if dirs.iter().any(|d| d.exists()) {
                    targets.push((v.name().to_string(), c.name.clone(), dirs));
                }
            }
        } else {
            targets.push((
                v.name().to_string(),
                String::new(),
                v.run.cgroup_dirs.clone(),
            ));
        }
    }
    if targets.is_empty() {
        eprintln!("No resources found in {ns} namespace.");
        return Ok(0);
    }
    let interval = Duration::from_millis(500);
    let first: Vec<_> = targets
        .iter()
        .map(|t| podrun_pod::podcgroup::usage(&t.2))
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(interval);
    let el = t0.elapsed().as_nanos().max(1) as u64;
    let mut rows = vec![if per_container {
        vec![
            "POD".to_string(),
            "NAME".into(),
            "CPU(cores)".into(),
            "MEMORY(bytes)".into(),
        ]
    } else {
        vec![
            "NAME".to_string(),
            "CPU(cores)".into(),
            "MEMORY(bytes)".into(),
        ]
    }];
    for (t, a) in targets.iter().zip(first) {
        let b = podrun_pod::podcgroup::usage(&t.2);
        let cpu = match (a.cpu_ns, b.cpu_ns) {
            (Some(x), Some(y)) => format!("{}m", y.saturating_sub(x) * 1000 / el),
            _ => "<unknown>".into(),
        };
        let mem = b
            .working_set
            .map(mem_str)
            .unwrap_or_else(|| "<unknown>".into());
        if per_container {
            rows.push(vec![t.0.clone(), t.1.clone(), cpu, mem]);
        } else {
            rows.push(vec![t.0.clone(), cpu, mem]);
        }
    }
    print!("{}", crate::pod_describe::columns(&rows));
    Ok(0)
}

fn wait(
    g: &GlobalOpts,
    ns: &str,
    name: &str,
    for_: &str,
    timeout: Duration,
) -> anyhow::Result<i32> {
    let deadline = Instant::now() + timeout;
    if for_ == "delete" {
        while podstate::pod_dir(&g.root, ns, name)
            .join(files::POD)
            .exists()
        {
            if Instant::now() >= deadline {
                eprintln!("error: timed out waiting for the condition on pods/{name}");
                return Ok(1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        println!("pod/{name} condition met");
        return Ok(0);
    }
    let Some(cond) = for_.strip_prefix("condition=") else {
        bail!("wait: --for={for_:?}: expected condition=NAME[=VALUE] or delete");
    };
    let (cond, want) = match cond.split_once('=') {
        Some((c, v)) => (c.to_string(), v.to_string()),
        None => (cond.to_string(), "True".to_string()),
    };
    loop {
        let v = find(&g.root, ns, name)?;
        if condition_is(&v.pod, &cond, &want) {
            println!("pod/{name} condition met");
            return Ok(0);
        }
        if Instant::now() >= deadline {
            eprintln!("error: timed out waiting for the condition on pods/{name}");
            return Ok(1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[allow(dead_code)]
fn event_type_str(t: EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn pod_or_oci_create() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().to_str().unwrap();
        assert!(is_pod_invocation(&v(&["--root", r, "create", "-f", "x"])));
        assert!(is_pod_invocation(&v(&["--root", r, "create", "pod.yaml"])));
        assert!(is_pod_invocation(&v(&["--root", r, "create", "-"])));
        assert!(!is_pod_invocation(&v(&[
            "--root", r, "create", "c1", "--bundle", "/b"
        ])));
        assert!(!is_pod_invocation(&v(&["--root", r, "create", "c1"])));
        assert!(is_pod_invocation(&v(&["--root", r, "get", "pods"])));
        assert!(is_pod_invocation(&v(&[
            "--root", r, "delete", "pod", "web"
        ])));
        assert!(!is_pod_invocation(&v(&["--root", r, "delete", "c1"])));
        assert!(!is_pod_invocation(&v(&[
            "--root", r, "exec", "c1", "--", "ls"
        ])));
        assert!(is_pod_invocation(&v(&[
            "--root", r, "exec", "web", "-c", "a", "--", "ls"
        ])));
        assert!(!is_pod_invocation(&v(&["--root", r, "state", "c1"])));
        assert!(is_pod_invocation(&v(&[
            "--root", r, "delete", "-n", "ns1", "web"
        ])));
        assert!(!is_pod_invocation(&v(&[
            "--root", r, "exec", "--cwd", "/", "c1", "ls"
        ])));
    }
}
