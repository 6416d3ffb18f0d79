//! A stand-in for a vendor component, for the demo and the tests; never packaged.
//!
//! It listens on a TCP port and answers HTTP 200 on a path, and can be told to start slowly,
//! exit or crash after a while, stop answering (hang), hold memory and fork children. A
//! listening socket systemd passes it (`LISTEN_FDS`, as `sd_listen_fds(3)` reads it, or as
//! standard input with `StandardInput=socket`, as Tomcat's `useInheritedChannel` takes it) is
//! served instead of binding the port, unless `--ignore-inherited` says to behave like a
//! server that does not take it.
//!
//! With `--client TARGET` it is instead the tests' client: it probes each target (`tcp://` or
//! `http://`, as the supervisor's probes) every `--every-ms` until its standard input closes,
//! then prints one JSON line per target with the requests made and those that failed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

/// Stand-in for an Image Serving component (tests and demo only).
#[derive(Debug, Parser)]
#[command(name = "imageserving-standin", version, args_override_self = true)]
struct Args {
    /// TCP port to listen on (on 127.0.0.1).
    #[arg(long)]
    port: Option<u16>,
    /// Path answered with 200; other paths get 404. "/" answers every path.
    #[arg(long, default_value = "/")]
    path: String,
    /// Seconds to wait before opening the port (a slow start).
    #[arg(long, default_value_t = 0.0)]
    start_delay: f64,
    /// Exit after this many seconds.
    #[arg(long)]
    exit_after: Option<f64>,
    /// Exit status used with --exit-after.
    #[arg(long, default_value_t = 0)]
    exit_code: i32,
    /// Crash (abort, SIGABRT) after this many seconds.
    #[arg(long)]
    crash_after: Option<f64>,
    /// Stop answering after this many seconds, staying alive (also on SIGUSR1).
    #[arg(long)]
    hang_after: Option<f64>,
    /// Hold this many MiB of touched memory.
    #[arg(long, default_value_t = 0)]
    hold_mib: usize,
    /// Fork this many child processes that live as long as this one.
    #[arg(long, default_value_t = 0)]
    children: usize,
    /// Ignore SIGTERM (systemd then needs SIGKILL after its stop timeout).
    #[arg(long)]
    ignore_sigterm: bool,
    /// On SIGTERM, exit with this status instead of dying by the signal: 143 is what a JVM
    /// (Tomcat) exits with, which its units list in `SuccessExitStatus=`.
    #[arg(long, value_name = "STATUS")]
    term_exit: Option<i32>,
    /// With --term-exit: seconds between SIGTERM and the exit (a server finishing its
    /// requests).
    #[arg(long, default_value_t = 0.0)]
    stop_delay: f64,
    /// When the port cannot be bound, keep running without serving (as a Tomcat whose
    /// connector could not bind does) instead of exiting 1.
    #[arg(long)]
    stay_on_bind_error: bool,
    /// Bind the port even when systemd passed a listening socket (as a Tomcat without
    /// `useInheritedChannel` does): the bind then fails, since systemd holds the port.
    #[arg(long)]
    ignore_inherited: bool,
    /// Write the time the port opened (microseconds since the Unix epoch) to this file.
    #[arg(long)]
    ready_file: Option<std::path::PathBuf>,
    /// Run as a child of another stand-in (internal).
    #[arg(long, hide = true)]
    child: bool,
    /// Be a client instead: probe this target (repeatable) until stdin closes.
    #[arg(long, value_name = "TARGET")]
    client: Vec<String>,
    /// Client: milliseconds between two probes of one target.
    #[arg(long, default_value_t = 20)]
    every_ms: u64,
    /// Client: how long one request may wait for its answer, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn main() {
    let args = Args::parse();
    if args.child {
        // Live until the parent's end of the pipe closes.
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        return;
    }
    if !args.client.is_empty() {
        client(
            &args.client,
            Duration::from_millis(args.every_ms),
            Duration::from_millis(args.timeout_ms),
        );
        return;
    }
    let hang = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&hang));
    if args.ignore_sigterm {
        let ignored = Arc::new(AtomicBool::new(false));
        let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, ignored);
    }
    // SIGTERM is a graceful stop, as a server's: accept nothing more, answer what was
    // accepted, then exit with --term-exit's status, or die by the signal as before.
    let terminated = Arc::new(AtomicBool::new(false));
    if !args.ignore_sigterm {
        let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&terminated));
    }
    let serving: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<u64>>>> =
        Arc::new(std::sync::Mutex::new(None));
    let exit_if_terminated = || {
        if terminated.load(Ordering::SeqCst) {
            let serve_thread = serving.lock().ok().and_then(|mut s| s.take());
            if let Some(accepted) = serve_thread.and_then(|t| t.join().ok()) {
                eprintln!("imageserving-standin: stopping after {accepted} connections");
            }
            std::thread::sleep(secs(args.stop_delay));
            match args.term_exit {
                Some(code) => std::process::exit(code),
                None => {
                    let _ = signal_hook::low_level::emulate_default_handler(
                        signal_hook::consts::SIGTERM,
                    );
                    std::process::exit(143);
                }
            }
        }
    };
    // Taken at once, before the slow start: connections wait in its backlog meanwhile.
    let inherited = if args.ignore_inherited {
        None
    } else {
        inherited_listener()
    };
    let memory = hold(args.hold_mib);
    let _children: Vec<Child> = (0..args.children).filter_map(|_| spawn_child()).collect();
    let started = Instant::now();
    while started.elapsed() < secs(args.start_delay) {
        exit_if_terminated();
        std::thread::sleep(Duration::from_millis(20));
    }
    let bound = || {
        args.port.and_then(|port| match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => Some(l),
        Err(e) if args.stay_on_bind_error => {
            eprintln!("imageserving-standin: cannot listen on 127.0.0.1:{port}: {e}; running on without serving");
            None
        }
        Err(e) => {
            eprintln!("imageserving-standin: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    })
    };
    let listener = inherited.or_else(bound);
    if let Some(listener) = listener {
        if let Some(file) = &args.ready_file {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            let _ = std::fs::write(file, now.to_string());
        }
        let hang = Arc::clone(&hang);
        let path = args.path.clone();
        let stop = Arc::clone(&terminated);
        let handle = std::thread::spawn(move || serve(&listener, &path, &hang, &stop));
        if let Ok(mut s) = serving.lock() {
            *s = Some(handle);
        }
    }
    eprintln!(
        "imageserving-standin: up on port {:?} after {:.1}s",
        args.port,
        started.elapsed().as_secs_f64()
    );
    loop {
        let t = started.elapsed();
        if args.exit_after.is_some_and(|s| t >= secs(s)) {
            std::process::exit(args.exit_code);
        }
        if args.crash_after.is_some_and(|s| t >= secs(s)) {
            std::process::abort();
        }
        if args.hang_after.is_some_and(|s| t >= secs(s)) {
            hang.store(true, Ordering::SeqCst);
        }
        exit_if_terminated();
        std::thread::sleep(Duration::from_millis(20));
        std::hint::black_box(&memory);
    }
}

/// The listening socket systemd passed: the first of `LISTEN_FDS` (fd 3) when `LISTEN_PID`
/// is this process, else standard input when it is a listening socket.
fn inherited_listener() -> Option<TcpListener> {
    use std::os::fd::{AsFd, FromRawFd};
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    if var("LISTEN_PID") == Some(std::process::id()) && var("LISTEN_FDS").unwrap_or(0) >= 1 {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        // SAFETY: sd_listen_fds(3): with LISTEN_PID naming this process, fds 3 to
        // 3 + LISTEN_FDS - 1 are open sockets passed to it and owned by nobody else in it;
        // fd 3 is taken once, here, and the variables are cleared so that it is not taken
        // again.
        return Some(unsafe { TcpListener::from_raw_fd(3) });
    }
    let stdin = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let listener = TcpListener::from(stdin);
    listener.local_addr().ok().map(|_| listener)
}

fn hold(mib: usize) -> Vec<u8> {
    let mut v = vec![0u8; mib * 1024 * 1024];
    // Touch every page so the memory is resident, not just reserved.
    for byte in v.iter_mut().step_by(4096) {
        *byte = 1;
    }
    v
}

fn spawn_child() -> Option<Child> {
    let exe = std::env::current_exe().ok()?;
    Command::new(exe)
        .arg("--child")
        .stdin(Stdio::piped())
        .spawn()
        .ok()
}

/// Answer connections until `stop`: accepted one at a time (non-blocking, checked every
/// 5 ms), so that after `stop` nothing more is taken from a listening socket that another
/// process (systemd, the next instance) shares. Returns how many connections it accepted.
fn serve(listener: &TcpListener, path: &str, hang: &AtomicBool, stop: &AtomicBool) -> u64 {
    let mut held: Vec<TcpStream> = Vec::new();
    let mut accepted = 0u64;
    if listener.set_nonblocking(true).is_err() {
        return accepted;
    }
    while !stop.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        accepted += 1;
        let _ = stream.set_nonblocking(false);
        if hang.load(Ordering::SeqCst) {
            // Hung: accept nothing more, answer nothing, keep what we have open.
            held.push(stream);
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return accepted;
        }
        let _ = answer(stream, path);
    }
    accepted
}

fn answer(stream: TcpStream, path: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let asked = line.split_whitespace().nth(1).unwrap_or("/");
    let ok = path == "/" || asked.split('?').next() == Some(path);
    let (status, body) = if ok {
        ("200 OK", "imageServer.standin=true\n")
    } else {
        ("404 Not Found", "not found\n")
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Probe every target on its own thread, each every `every`, until stdin closes; then print
/// one JSON line per target: `{"target", "requests", "failures", "longest_outage_ms",
/// "slowest_ms", "first_failures", "outages"}` (`slowest_ms`: the longest a request that
/// succeeded waited for its answer). Each request waits at most `timeout` per step.
fn client(targets: &[String], every: Duration, timeout: Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = targets
        .iter()
        .map(|t| {
            let target = match imageserving::probe::parse_target(t) {
                Ok(target) => target,
                Err(e) => {
                    eprintln!("imageserving-standin: --client {t}: {e}");
                    std::process::exit(2);
                }
            };
            let stop = Arc::clone(&stop);
            let name = t.clone();
            std::thread::spawn(move || {
                let (mut requests, mut failures) = (0u64, 0u64);
                let mut first_failures: Vec<String> = Vec::new();
                let mut outage_since: Option<Instant> = None;
                let mut longest = Duration::ZERO;
                let mut slowest = Duration::ZERO;
                // Each outage as [first failure, first success after it] in Unix ms, so that
                // outages on several hosts can be compared.
                let mut outages: Vec<[u128; 2]> = Vec::new();
                let unix_ms = || {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis())
                };
                let mut outage_start_ms = 0;
                while !stop.load(Ordering::SeqCst) {
                    let round = Instant::now();
                    requests += 1;
                    match imageserving::probe::check(&target, timeout) {
                        Ok(()) => {
                            slowest = slowest.max(round.elapsed());
                            if let Some(since) = outage_since.take() {
                                longest = longest.max(since.elapsed());
                                outages.push([outage_start_ms, unix_ms()]);
                            }
                        }
                        Err(e) => {
                            failures += 1;
                            if outage_since.is_none() {
                                outage_start_ms = unix_ms();
                            }
                            outage_since.get_or_insert(round);
                            if first_failures.len() < 5 {
                                first_failures.push(e);
                            }
                        }
                    }
                    std::thread::sleep(every.saturating_sub(round.elapsed()));
                }
                if let Some(since) = outage_since {
                    longest = longest.max(since.elapsed());
                    outages.push([outage_start_ms, unix_ms()]);
                }
                serde_json::json!({
                    "target": name,
                    "requests": requests,
                    "failures": failures,
                    "longest_outage_ms": longest.as_millis(),
                    "slowest_ms": slowest.as_millis(),
                    "first_failures": first_failures,
                    "outages": outages,
                })
            })
        })
        .collect();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        if let Ok(line) = t.join() {
            println!("{line}");
        }
    }
}
