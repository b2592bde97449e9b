//! The OCI runtime face: runc's commands, flags and exit codes.

use crate::GlobalOpts;
use anyhow::{Context, Result};
use clap::Subcommand;
use podrun_container as engine;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum OciCommand {
    /// Create a container (its init waits for `start`)
    Create(CreateArgs),
    /// Run the user process of a created container
    Start { id: String },
    /// Create and start a container, and wait for it unless --detach
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach from the container's process
        #[arg(short = 'd', long)]
        detach: bool,
        /// Ignored for runc compatibility
        #[arg(long, hide = true)]
        keep: bool,
    },
    /// Print the OCI state of a container as JSON
    State { id: String },
    /// Send a signal to the container's init process (default SIGTERM)
    Kill {
        id: String,
        signal: Option<String>,
        /// Send the signal to all processes in the container
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Delete a container's resources
    Delete {
        id: String,
        /// Kill the container first if it is running
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// List containers
    List {
        #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Print only the ids
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// List the processes running in a container
    Ps {
        #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        id: String,
        /// Arguments passed to ps(1)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Run a new process inside a container
    Exec(ExecArgs),
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Change the cgroup limits of a container (runc's `update`)
    Update(Box<UpdateArgs>),
    /// Resource usage of a container from its cgroup (runc's `events`)
    Events {
        id: String,
        /// Print one stats record and exit
        #[arg(long)]
        stats: bool,
        /// Interval between records when streaming (e.g. 5s)
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Print the runtime's OCI features JSON
    Features,
    /// Write a default config.json
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for a rootless container
        #[arg(long)]
        rootless: bool,
    },
}

/// runc's `update` flags. Sizes take units (256m, 1g); -1 is unlimited.
#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// A linux.resources JSON document with the fields to change ('-': standard input);
    /// the other options are then ignored
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Block I/O weight (10-1000)
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CFS period (µs)
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CFS quota (µs per period; -1: none)
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CFS burst (µs)
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    /// Realtime period (µs)
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime (µs per period)
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// SCHED_IDLE for the cgroup (1) or not (0)
    #[arg(long = "cpu-idle")]
    pub cpu_idle: Option<i64>,
    /// CPUs to use (cpuset, e.g. 0-1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use (cpuset)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory reservation (soft limit)
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory + swap limit (-1: unlimited swap)
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of tasks (-1: unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Obsolete (ignored, as by runc)
    #[arg(long = "kernel-memory", hide = true)]
    pub kernel_memory: Option<String>,
    /// Obsolete (ignored, as by runc)
    #[arg(long = "kernel-memory-tcp", hide = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Intel RDT L3 cache schema (not supported)
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported)
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    pub id: String,
}

impl UpdateArgs {
    /// The request as a `linux.resources` document with only the given fields set.
    fn request(&self) -> Result<oci_spec::runtime::LinuxResources> {
        use serde_json::{json, Map, Value};
        if self.l3_cache_schema.is_some() || self.mem_bw_schema.is_some() {
            anyhow::bail!(
                "--l3-cache-schema/--mem-bw-schema: Intel RDT is not supported by podrun"
            );
        }
        if let Some(p) = &self.resources {
            let (what, data) = if p.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                    .context("update --resources -: read standard input")?;
                ("standard input".to_string(), b)
            } else {
                let b = std::fs::read(p)
                    .with_context(|| format!("update --resources {}", p.display()))?;
                (p.display().to_string(), b)
            };
            return serde_json::from_slice(&data).with_context(|| {
                format!("update --resources: {what} is not a linux.resources document")
            });
        }
        for (flag, v) in [
            ("kernel-memory", &self.kernel_memory),
            ("kernel-memory-tcp", &self.kernel_memory_tcp),
        ] {
            if v.is_some() {
                tracing::warn!("--{flag} is obsolete and ignored");
            }
        }
        let size = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
            v.as_deref()
                .map(|s| engine::update::parse_ram(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
                .transpose()
        };
        let obj = |pairs: Vec<(&str, Option<Value>)>| -> Option<Value> {
            let m: Map<String, Value> = pairs
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        };
        let memory = obj(vec![
            ("limit", size("memory", &self.memory)?.map(Value::from)),
            (
                "reservation",
                size("memory-reservation", &self.memory_reservation)?.map(Value::from),
            ),
            (
                "swap",
                size("memory-swap", &self.memory_swap)?.map(Value::from),
            ),
        ]);
        let cpu = obj(vec![
            ("shares", self.cpu_share.map(Value::from)),
            ("quota", self.cpu_quota.map(Value::from)),
            ("burst", self.cpu_burst.map(Value::from)),
            ("period", self.cpu_period.map(Value::from)),
            ("realtimeRuntime", self.cpu_rt_runtime.map(Value::from)),
            ("realtimePeriod", self.cpu_rt_period.map(Value::from)),
            ("idle", self.cpu_idle.map(Value::from)),
            ("cpus", self.cpuset_cpus.clone().map(Value::from)),
            ("mems", self.cpuset_mems.clone().map(Value::from)),
        ]);
        let block_io = obj(vec![("weight", self.blkio_weight.map(Value::from))]);
        let pids = obj(vec![("limit", self.pids_limit.map(Value::from))]);
        let doc = obj(vec![
            ("memory", memory),
            ("cpu", cpu),
            ("blockIO", block_io),
            ("pids", pids),
        ])
        .unwrap_or_else(|| json!({}));
        Ok(serde_json::from_value(doc)?)
    }
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Path to the OCI bundle (default: the current directory)
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Write the container's init pid here
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use chroot instead of pivot_root
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3..3+N) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// process.json describing the process to run
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(long)]
    pub cwd: Option<String>,
    /// UID[:GID]
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the bounding, effective and permitted sets (not inheritable: CVE-2022-29162)
    #[arg(short = 'c', long = "cap")]
    pub caps: Vec<String>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    #[arg(long = "process-label", hide = true)]
    pub process_label: Option<String>,
    #[arg(long, hide = true)]
    pub apparmor: Option<String>,
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

impl CreateArgs {
    fn options(self) -> engine::CreateOptions {
        engine::CreateOptions {
            id: self.id,
            bundle: self.bundle,
            console_socket: self.console_socket,
            pid_file: self.pid_file,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            stdio: None,
        }
    }
}

pub fn run(g: &GlobalOpts, cmd: OciCommand) -> Result<i32> {
    let rt = engine::Runtime::new(&g.root);
    match cmd {
        OciCommand::Create(a) => {
            rt.create(&a.options())?;
            Ok(0)
        }
        OciCommand::Start { id } => {
            rt.start(&id)?;
            Ok(0)
        }
        OciCommand::Run { create, detach, .. } => Ok(rt.run(&create.options(), detach)?),
        OciCommand::State { id } => {
            let st = rt.state(&id)?;
            println!("{}", serde_json::to_string_pretty(&st)?);
            Ok(0)
        }
        OciCommand::Kill { id, signal, all } => {
            // "0" only checks that the init exists (kill(2)'s, and runc's, signal 0).
            let sig = match signal.as_deref().unwrap_or("SIGTERM") {
                "0" => 0,
                s => engine::signal::parse(s)?,
            };
            rt.kill(&id, sig, all)?;
            Ok(0)
        }
        OciCommand::Delete { id, force } => {
            rt.delete(&id, force)?;
            Ok(0)
        }
        OciCommand::List { format, quiet } => {
            let list = rt.list()?;
            if quiet {
                for s in &list {
                    println!("{}", s.id);
                }
            } else if format == "json" {
                let v: Vec<_> = list.iter().map(engine::ListEntry::from).collect();
                println!("{}", serde_json::to_string(&v)?);
            } else {
                print_list_table(&list);
            }
            Ok(0)
        }
        OciCommand::Ps {
            format,
            id,
            ps_args,
        } => {
            let pids = rt.pids(&id)?;
            if format == "json" {
                println!("{}", serde_json::to_string(&pids)?);
                return Ok(0);
            }
            ps_table(&pids, &ps_args)
        }
        // As runc: 255 when exec itself fails, so that it is not taken for the status of the
        // process (which is returned as it is otherwise).
        OciCommand::Exec(a) => match exec(&rt, a) {
            Ok(code) => Ok(code),
            Err(e) => {
                crate::logging::report_error(&e);
                Ok(255)
            }
        },
        OciCommand::Update(a) => {
            rt.update(&a.id, &a.request()?)?;
            Ok(0)
        }
        OciCommand::Pause { id } => {
            rt.pause(&id)?;
            Ok(0)
        }
        OciCommand::Events {
            id,
            stats,
            interval,
        } => {
            let every = crate::pod_cmd::parse_duration(&interval)?;
            loop {
                let st = rt.stats(&id)?;
                println!("{}", stats_json(&id, &st));
                if stats {
                    return Ok(0);
                }
                std::thread::sleep(every);
                if rt.state(&id)?.status == "stopped" {
                    return Ok(0);
                }
            }
        }
        OciCommand::Resume { id } => {
            rt.resume(&id)?;
            Ok(0)
        }
        OciCommand::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&engine::features::features())?
            );
            Ok(0)
        }
        OciCommand::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                anyhow::bail!("{}: file already exists", path.display());
            }
            // runc's template: `sh` on a terminal (for `run` by hand). Capability lists are
            // sets in oci-spec; they are written sorted, so the file is the same every time.
            let mut spec = serde_json::to_value(engine::spec::default_spec(rootless))?;
            spec["process"]["terminal"] = true.into();
            if let Some(caps) = spec["process"]["capabilities"].as_object_mut() {
                for set in caps.values_mut() {
                    if let Some(list) = set.as_array_mut() {
                        list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                    }
                }
            }
            let text = serde_json::to_string_pretty(&spec)?;
            std::fs::write(&path, text + "\n")
                .with_context(|| format!("write {}", path.display()))?;
            Ok(0)
        }
    }
}

fn exec(rt: &engine::Runtime, a: ExecArgs) -> Result<i32> {
    let opts = engine::ExecOptions {
        process_json: a.process,
        args: a.args,
        tty: a.tty,
        detach: a.detach,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        env: a.env,
        cwd: a.cwd,
        user: a.user,
        additional_gids: a.additional_gids,
        caps: a.caps,
        no_new_privs: a.no_new_privs,
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
    };
    Ok(rt.exec(&a.id, opts)?)
}

fn print_list_table(list: &[engine::State]) {
    println!(
        "{:<12} {:<8} {:<10} {:<50} {:<30} OWNER",
        "ID", "PID", "STATUS", "BUNDLE", "CREATED"
    );
    for s in list {
        println!(
            "{:<12} {:<8} {:<10} {:<50} {:<30} {}",
            s.id,
            s.pid.unwrap_or(0),
            s.status,
            s.bundle.display(),
            s.created,
            s.owner
        );
    }
}

/// `ps` table: run ps(1) with the given args and keep the header plus the container's pids.
fn ps_table(pids: &[i32], args: &[String]) -> Result<i32> {
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        anyhow::bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow::anyhow!("ps output has no PID column"))?;
    println!("{header}");
    for l in lines {
        if let Some(pid) = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pids.contains(&pid) {
                println!("{l}");
            }
        }
    }
    Ok(0)
}

/// runc's `events --stats` record: {"type":"stats","id":..,"data":{cpu,memory,pids}}.
fn stats_json(id: &str, s: &podrun_cgroups::Stats) -> serde_json::Value {
    serde_json::json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": {"usage": {"total": s.cpu_usage_ns}},
            "memory": {"usage": {"usage": s.memory_usage, "limit": s.memory_limit}},
            "pids": {"current": s.pids_current, "limit": s.pids_limit},
        }
    })
}
