//! `podrun`: the command line. Parse, dispatch, print; no kernel work here.
//!
//! The program starts at its own C `main` (`no_main`), not at std's runtime start: that
//! reads /proc/self/maps for the main thread's stack bounds, sets up an alternate signal
//! stack and SIGSEGV/SIGBUS handlers (for a "stack overflow" message) and polls fds 0-2,
//! ~15 system calls (~50 µs) on every invocation. podrun keeps the one part that matters
//! for a runtime: fds 0-2 are made to exist (/dev/null) if the caller closed them, so no
//! file podrun opens can become its stdout. Arguments and environment come from glibc as
//! usual (std reads them from .init_array).
#![cfg_attr(not(test), no_main)]

mod fast_cli;
mod image_cmd;
mod logging;
mod oci_cmd;
mod pod_cmd;
mod pod_describe;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "podrun",
    version,
    about = "A direct-to-kernel container runtime: OCI runtime (runc-compatible) and Kubernetes Pod runner",
    after_help = "Pod commands (Kubernetes Pod manifests on this host):\n  create -f pod.yaml [--wait[=ready]]   create pods (YAML/JSON, - for stdin)\n  get pods [-o wide|json|yaml|name]     list pods\n  describe pod NAME                     details and events\n  logs POD [-c C] [-f] [--previous]     container logs\n  exec POD [-c C] [-i] [-t] -- CMD      run a command in a container\n  delete pod NAME [--grace-period N] [--force]\n  wait pod/NAME --for=condition=Ready|delete\nSee `podrun get --help` etc."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Root directory for container state (tmpfs recommended)
    #[arg(
        long,
        global = true,
        env = "PODRUN_ROOT",
        default_value = "/run/podrun"
    )]
    pub root: PathBuf,
    /// Write logs to this file instead of stderr
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups (not supported by podrun)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Ignored for runc compatibility
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    #[command(flatten)]
    Oci(oci_cmd::OciCommand),
    /// Manage images in the local store
    Image {
        #[command(subcommand)]
        cmd: image_cmd::ImageCommand,
    },
}

/// The process entry point (see the module documentation).
///
/// # Safety
/// Called by the C runtime only, with its `argc` and `argv`.
#[cfg(not(test))]
#[no_mangle]
pub unsafe extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: the C runtime's argc and argv, which live as long as the process.
    unsafe { podrun_container::util::set_args(argc, argv) };
    ensure_std_fds();
    run_cli()
}

/// fds 0, 1 and 2 open, on /dev/null where the caller left them closed (as std's runtime
/// start does).
#[cfg(not(test))]
fn ensure_std_fds() {
    for fd in 0..3 {
        // SAFETY: fcntl(F_GETFD) only queries a descriptor number.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: open(2) of a constant path; the lowest free number is `fd` itself,
            // since the lower ones are open.
            let n = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if n != fd {
                // SAFETY: abort(3) cannot fail; a process without stdio is not safe to go on.
                unsafe { libc::abort() };
            }
        }
    }
}

#[cfg_attr(test, allow(dead_code))]
fn run_cli() -> ! {
    // A CLI whose reader went away (`podrun state x | grep -q`) ends quietly,
    // as Unix tools do, instead of panicking on EPIPE. (The pod supervisor
    // ignores SIGPIPE again for itself.)
    // SAFETY: setting a signal disposition before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    podrun_container::util::trace("main");
    let args: Vec<String> = podrun_container::util::args().into_iter().skip(1).collect();
    early_seal(&args);
    if pod_cmd::is_pod_invocation(&args) {
        let cli = pod_cmd::PodCli::parse_from(podrun_container::util::args_os());
        let _guard = match logging::init(&cli.global) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("podrun: {e:#}");
                std::process::exit(1);
            }
        };
        let code = match pod_cmd::run(cli) {
            Ok(code) => code,
            Err(e) => {
                logging::report_error(&e);
                1
            }
        };
        std::process::exit(code);
    }
    // The hot OCI commands skip building clap's command tree (see fast_cli.rs); anything
    // the fast parser does not accept verbatim is parsed by clap as before.
    let env_root = std::env::var("PODRUN_ROOT").ok();
    let cli = fast_cli::parse(&args, env_root.as_deref())
        .unwrap_or_else(|| Cli::parse_from(podrun_container::util::args_os()));
    podrun_container::util::trace("cli parsed");
    let _guard = match logging::init(&cli.global) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("podrun: {e:#}");
            std::process::exit(1);
        }
    };
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            logging::report_error(&e);
            1
        }
    };
    std::process::exit(code);
}

/// `exec` seals podrun against CVE-2019-5736 before anything else (see
/// crates/container/src/selfexe.rs): where that means executing podrun again, clap has
/// parsed nothing in the process that is thrown away. `create` and `run` seal once they
/// know the spec (crates/container/src/create.rs); a pod create forks nothing into a
/// container itself and starts its supervisor from a sealed view (pod_cmd::start_pod).
fn early_seal(args: &[String]) {
    let mut root = std::env::var("PODRUN_ROOT").unwrap_or_else(|_| "/run/podrun".into());
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--root" | "--log" | "--log-format" | "--criu" => {
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
            "exec" => {
                if let Err(e) =
                    podrun_container::selfexe::ensure_sealed(std::path::Path::new(&root))
                {
                    eprintln!("podrun: {e}");
                    std::process::exit(1);
                }
                return;
            }
            _ => return,
        }
        i += 1;
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    if cli.global.systemd_cgroup {
        anyhow::bail!("--systemd-cgroup is not supported: podrun manages cgroupfs directly; drop the flag (containerd: SystemdCgroup = false)");
    }
    match cli.command {
        Command::Oci(c) => oci_cmd::run(&cli.global, c),
        Command::Image { cmd } => image_cmd::run(&cli.global, cmd),
    }
}
