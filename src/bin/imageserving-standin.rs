//! A stand-in for a vendor component, for the demo and the tests; never packaged.
//!
//! It listens on a TCP port and answers HTTP 200 on a path, and can be told to start slowly,
//! exit or crash after a while, stop answering (hang), hold memory and fork children.
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
        client(&args.client, Duration::from_millis(args.every_ms));
        return;
    }
    let hang = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&hang));
    if args.ignore_sigterm {
        let ignored = Arc::new(AtomicBool::new(false));
        let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, ignored);
    }
    let terminated = Arc::new(AtomicBool::new(false));
    if args.term_exit.is_some() && !args.ignore_sigterm {
        let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&terminated));
    }
    let exit_if_terminated = || {
        if terminated.load(Ordering::SeqCst) {
            std::thread::sleep(secs(args.stop_delay));
            std::process::exit(args.term_exit.unwrap_or(143));
        }
    };
    let memory = hold(args.hold_mib);
    let _children: Vec<Child> = (0..args.children).filter_map(|_| spawn_child()).collect();
    let started = Instant::now();
    while started.elapsed() < secs(args.start_delay) {
        exit_if_terminated();
        std::thread::sleep(Duration::from_millis(20));
    }
    let listener = args.port.and_then(|port| match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => Some(l),
        Err(e) if args.stay_on_bind_error => {
            eprintln!("imageserving-standin: cannot listen on 127.0.0.1:{port}: {e}; running on without serving");
            None
        }
        Err(e) => {
            eprintln!("imageserving-standin: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    });
    if let Some(listener) = listener {
        if let Some(file) = &args.ready_file {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            let _ = std::fs::write(file, now.to_string());
        }
        let hang = Arc::clone(&hang);
        let path = args.path.clone();
        std::thread::spawn(move || serve(&listener, &path, &hang));
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

fn serve(listener: &TcpListener, path: &str, hang: &AtomicBool) {
    let mut held: Vec<TcpStream> = Vec::new();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if hang.load(Ordering::SeqCst) {
            // Hung: accept nothing more, answer nothing, keep what we have open.
            held.push(stream);
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        let _ = answer(stream, path);
    }
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
/// "first_failures", "outages"}`.
fn client(targets: &[String], every: Duration) {
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
                    match imageserving::probe::check(&target, Duration::from_secs(1)) {
                        Ok(()) => {
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
