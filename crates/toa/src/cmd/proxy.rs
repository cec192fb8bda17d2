//! `toa proxy`: run the edge L4 proxy, validate its config, import EdgeOne rule lists,
//! or ask the running proxy over its admin socket (reload, origin states).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};

use toa_proxy::admin::Command;

use crate::edge_tagger::EdgeWriterFactory;
use crate::port_steering::RangeSteerer;

/// Run the edge L4 proxy in the foreground (SIGHUP reloads the config, SIGTERM drains and exits;
/// under systemd `Type=notify` it reports ready, reloading and stopping).
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ProxyArgs {
    #[command(subcommand)]
    command: Option<ProxyCommand>,
    /// Config file (TOML): rules, origin groups, [proxy], [health], [toa].
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Also reload when the config file's content changes (checked every second; follows
    /// symlinks, so a Kubernetes ConfigMap update is seen). A rejected file keeps the old config.
    #[arg(long)]
    watch_config: bool,
    /// Accept a config without online rules (at start and on reload): the proxy then
    /// listens on nothing. Without it such a file is refused as empty or truncated.
    #[arg(long)]
    allow_empty: bool,
    /// Take commands (`toa proxy reload`, `toa proxy origin`) on this Unix socket, made root-only (0600, its
    /// directory 0700); the packaged unit uses /run/toa-proxy/admin.sock.
    #[arg(long, value_name = "PATH")]
    admin_socket: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum ProxyCommand {
    /// Reload the running proxy's config and wait for the outcome: exit 1 with the reason
    /// (file:line, field) when the file is rejected, the old config still running.
    Reload {
        /// The running proxy's --admin-socket.
        #[arg(long, value_name = "PATH", default_value = toa_proxy::admin::DEFAULT_ADMIN_SOCKET)]
        admin_socket: PathBuf,
    },
    /// An origin's state in the running proxy, without a reload.
    Origin {
        #[command(subcommand)]
        command: OriginCommand,
    },
    /// Validate a config file and exit: prints one line naming file, line and field on error.
    Check {
        /// Config file to validate.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Accept a config without online rules, as `toa proxy --allow-empty` would.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Forwarding rule lists.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand, Debug)]
enum OriginCommand {
    /// Set an origin's state: ready (health decides), drain (no new connections, open ones
    /// kept, still health-checked) or maint (drain, and no health checks). Kept across
    /// reloads while the rule still has the origin; weight 0 in the file keeps it drained.
    SetState {
        /// A rule's tag, or an origin group's name (every rule of the group).
        group_or_rule: String,
        /// The origin's IP address, as `origin list` shows it.
        address: String,
        /// ready, drain or maint.
        state: String,
        /// The running proxy's --admin-socket.
        #[arg(long, value_name = "PATH", default_value = toa_proxy::admin::DEFAULT_ADMIN_SOCKET)]
        admin_socket: PathBuf,
    },
    /// List every online rule's origins: address, weight, state, health and open connections.
    List {
        /// The running proxy's --admin-socket.
        #[arg(long, value_name = "PATH", default_value = toa_proxy::admin::DEFAULT_ADMIN_SOCKET)]
        admin_socket: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// Convert an EdgeOne L4 rule list (FILE.json or FILE.csv, EdgeOne field names; - reads stdin) to TOML on stdout,
    /// validated as `toa proxy check` validates it.
    Import {
        /// The rule list, `-` for stdin; .json or .csv picks the format, otherwise the content does.
        file: PathBuf,
        /// JSON with `OriginGroups` (DescribeOriginGroup's answer): the origins of
        /// ORIGIN_GROUP and LB rules.
        #[arg(long, value_name = "FILE")]
        origin_groups: Option<PathBuf>,
    },
    /// Write a config's rules as EdgeOne L4 rule JSON on stdout (what import reads back).
    Export {
        /// Config file to export.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
}

pub fn run(args: ProxyArgs) -> anyhow::Result<()> {
    match args.command {
        Some(ProxyCommand::Check {
            config,
            allow_empty,
        }) => check(&config, allow_empty),
        Some(ProxyCommand::Reload { admin_socket }) => {
            let answer = ask(&admin_socket, &Command::Reload, RELOAD_TIMEOUT);
            println!("{}", answer.status);
            Ok(())
        }
        Some(ProxyCommand::Origin {
            command:
                OriginCommand::SetState {
                    group_or_rule,
                    address,
                    state,
                    admin_socket,
                },
        }) => {
            let command = Command::set_origin_state(&group_or_rule, &address, &state)
                .unwrap_or_else(|e| fail(e));
            println!("{}", ask(&admin_socket, &command, ADMIN_TIMEOUT).status);
            Ok(())
        }
        Some(ProxyCommand::Origin {
            command: OriginCommand::List { admin_socket },
        }) => {
            for line in ask(&admin_socket, &Command::ListOrigins, ADMIN_TIMEOUT).lines {
                println!("{line}");
            }
            Ok(())
        }
        Some(ProxyCommand::Rules {
            command:
                RulesCommand::Import {
                    file,
                    origin_groups,
                },
        }) => match toa_edgeone::import::import_file(&file, origin_groups.as_deref()) {
            Ok(imported) => {
                for w in &imported.warnings {
                    eprintln!("warning: {w}");
                }
                print!("{}", imported.toml);
                Ok(())
            }
            Err(e) => fail(e),
        },
        Some(ProxyCommand::Rules {
            command: RulesCommand::Export { config },
        }) => export(&config),
        None => {
            let config = args
                .config
                .context("missing --config FILE (try: toa proxy --config proxy.toml)")?;
            serve(
                config,
                toa_proxy::ServeOptions {
                    metrics: args.metrics,
                    watch_config: args.watch_config,
                    allow_empty: args.allow_empty,
                    admin_socket: args.admin_socket,
                    toa_tagger: None,
                    port_steering: None,
                },
            )
        }
    }
}

/// How long `toa proxy reload` waits: a reload binds new ports and reads the file, but
/// host names in it resolve with the system resolver's own timeouts.
const RELOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long `toa proxy origin` waits: the proxy answers once a reload in progress is done.
const ADMIN_TIMEOUT: std::time::Duration = RELOAD_TIMEOUT;

/// `command`'s answer from the proxy at `admin_socket`; on error, its one line and exit 1.
fn ask(
    admin_socket: &std::path::Path,
    command: &Command,
    timeout: std::time::Duration,
) -> toa_proxy::admin::Answer {
    toa_proxy::admin::request(admin_socket, command, timeout).unwrap_or_else(|e| fail(e))
}

/// Prints `reason` as the one line it is (no "Error:" prefix) and exits 1.
fn fail(reason: impl std::fmt::Display) -> ! {
    eprintln!("{reason}");
    std::process::exit(1)
}

fn check(path: &std::path::Path, allow_empty: bool) -> anyhow::Result<()> {
    let loaded = toa_config::Config::load(path).and_then(|cfg| {
        if !allow_empty {
            cfg.require_online_rules()?;
        }
        Ok(cfg)
    });
    match loaded {
        Ok(cfg) => {
            let sockets = match listening_sockets(&cfg) {
                Ok(sockets) => sockets,
                Err(e) => fail(format_args!("{}: {e}", path.display())),
            };
            let online = cfg.online_rules().count();
            println!(
                "{}: ok ({} rules, {online} online; {sockets})",
                path.display(),
                cfg.rules.len()
            );
            Ok(())
        }
        Err(e) => fail(e),
    }
}

/// The listening sockets the config takes, as `toa proxy` would open them here: a socket
/// per port and worker, or, when that is beyond the open-file limit (the hard one, which
/// the proxy raises to) and this host can steer, one per range. Refused in one line when
/// neither fits.
fn listening_sockets(cfg: &toa_config::Config) -> Result<String, toa_proxy::TooFewDescriptors> {
    let workers = toa_proxy::worker_count();
    let limit = toa_proxy::hard_open_file_limit().unwrap_or(u64::MAX);
    let per_port = toa_proxy::listening_sockets(cfg, false, workers);
    let fits = |n: u64| n.saturating_add(toa_proxy::RESERVED_DESCRIPTORS) <= limit;
    if fits(per_port) {
        return Ok(format!(
            "{per_port} listening sockets, open-file limit {limit}"
        ));
    }
    let steered = toa_proxy::listening_sockets(cfg, true, workers);
    let refused = toa_proxy::TooFewDescriptors {
        needed: per_port,
        open: 0,
        limit,
    };
    if toa_proxy::steered_ranges(cfg).is_empty() || !fits(steered) {
        return Err(refused);
    }
    match toa_loader::PortSteerer::probe() {
        Ok(()) => Ok(format!(
            "{steered} listening sockets with port ranges through sk_lookup ({per_port} without), open-file limit {limit}"
        )),
        Err(_) => Err(refused),
    }
}

fn export(path: &std::path::Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let cfg = match toa_config::Config::parse(path, &text) {
        Ok(cfg) => cfg,
        Err(e) => fail(e),
    };
    let exported = toa_edgeone::export::export(&cfg, &text);
    for w in &exported.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", exported.json);
    Ok(())
}

fn serve(config: PathBuf, mut options: toa_proxy::ServeOptions) -> anyhow::Result<()> {
    crate::logs::init();
    let factory = Arc::new(EdgeWriterFactory::default());
    // Before the runtime: its threads then start with the reduced sets.
    let steering = drop_privileges(&config, &factory)?;
    options.toa_tagger = Some(factory);
    options.port_steering = steering.map(|s| Arc::new(s) as Arc<dyn toa_proxy::PortSteering>);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(toa_proxy::serve(&config, options))?;
    Ok(())
}

/// Attaches the TOA edge writer and the port steerer if the config asks for them, then
/// keeps only what the running proxy needs: CAP_NET_BIND_SERVICE, so a reload can bind
/// new ports below 1024; CAP_SYS_RESOURCE, because without it (or CAP_SYS_ADMIN) all of
/// the user's pipes share `fs.pipe-user-pages-soft` (64 MiB), past which new splice pipes
/// get two pages and none may grow, which would slow every connection of a busy proxy;
/// and with the writer or the steerer attached CAP_BPF, to read the writer's counters
/// and write the steerer's ranges (before Linux 6.5, with `kernel.unprivileged_bpf_disabled`
/// set, every bpf() call needs it, map reads included). CAP_SYS_ADMIN, CAP_NET_ADMIN and
/// the rest go: only attaching needed them.
fn drop_privileges(
    config: &std::path::Path,
    factory: &EdgeWriterFactory,
) -> anyhow::Result<Option<RangeSteerer>> {
    use toa_host::Capability::{CAP_BPF, CAP_NET_BIND_SERVICE, CAP_SYS_RESOURCE};
    // The proxy reads the file again and reports its errors, with the rule's name.
    let loaded = toa_config::Config::load(config).ok();
    let toa_kind = loaded.as_ref().and_then(|c| c.toa_kind());
    let steering = loaded.as_ref().and_then(RangeSteerer::attach_at_start);
    let attached = toa_kind.is_some_and(|kind| factory.attach_at_start(kind)) || steering.is_some();
    let keep: &[_] = match attached {
        true => &[CAP_NET_BIND_SERVICE, CAP_SYS_RESOURCE, CAP_BPF],
        false => &[CAP_NET_BIND_SERVICE, CAP_SYS_RESOURCE],
    };
    let left = toa_host::keep_only_capabilities(keep).context("dropping capabilities at start")?;
    tracing::info!(capabilities = ?left, "capabilities dropped to what reloads need");
    Ok(steering)
}
