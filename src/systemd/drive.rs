//! Driving a zbus connection without zbus's executor thread, and connecting to the usual bus
//! address without its helper thread.
//!
//! A zbus connection reads its socket in a task on its own executor. zbus normally ticks that
//! executor from a thread it starts; a process that runs for two milliseconds pays more for
//! that thread than for its calls. Here the thread that waits for a reply ticks the executor
//! itself ([`with_executor`]), and a background thread ([`spawn_driver`]) is started only when
//! signals must be read while nobody waits.

use std::future::Future;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use zbus::export::futures_core::Stream;
use zbus::Executor;

/// Run `fut`, ticking `executor` whenever `fut` cannot progress.
pub(super) async fn with_executor<T>(
    executor: &Executor<'static>,
    fut: impl Future<Output = T>,
) -> T {
    let mut fut = pin!(fut);
    let mut tick = pin!(executor.tick());
    std::future::poll_fn(move |cx| loop {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(v);
        }
        match tick.as_mut().poll(cx) {
            // A task ran (maybe the socket reader delivering our reply): poll `fut` again.
            Poll::Ready(()) => tick.set(executor.tick()),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

/// `fut`'s output, or `None` once `limit` has passed (an async-io timer: `zbus::block_on`
/// runs async-io's reactor, which fires it).
pub(super) async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    let mut fut = pin!(fut);
    let mut timer = async_io::Timer::after(limit);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if std::pin::Pin::new(&mut timer).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// Tick `executor` from a thread of its own for as long as it has tasks (the connection's
/// socket reader lives as long as the connection).
pub(super) fn spawn_driver(executor: Executor<'static>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("zbus-driver".into())
        .spawn(move || {
            zbus::block_on(async move {
                while !executor.is_empty() {
                    executor.tick().await;
                }
            });
        })
        .map(drop)
}

/// The next item of a stream.
pub(super) async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}

/// The socket path of a D-Bus address of the plain form `unix:path=...` (one address, no
/// `guid=` to check), unescaped as the D-Bus specification says; `None` for anything else,
/// which is left to zbus's own address handling.
pub(super) fn plain_unix_path(address: &str) -> Option<PathBuf> {
    let value = address.strip_prefix("unix:path=")?;
    if value.is_empty() || value.contains([',', ';']) {
        return None;
    }
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

#[cfg(test)]
mod tests {
    use super::plain_unix_path;
    use std::path::PathBuf;

    #[test]
    fn plain_unix_paths_are_taken_and_unescaped() {
        assert_eq!(
            plain_unix_path("unix:path=/run/dbus/system_bus_socket"),
            Some(PathBuf::from("/run/dbus/system_bus_socket"))
        );
        assert_eq!(
            plain_unix_path("unix:path=/tmp/a%20b%2cc"),
            Some(PathBuf::from("/tmp/a b,c"))
        );
    }

    #[test]
    fn other_addresses_are_left_to_zbus() {
        for a in [
            "unix:path=/run/bus,guid=0123456789abcdef0123456789abcdef",
            "unix:abstract=/tmp/dbus-x",
            "unix:path=/a;unix:path=/b",
            "tcp:host=localhost,port=1",
            "unix:path=",
            "unix:path=/bad%2",
            "unix:path=/bad%zz",
            "",
        ] {
            assert_eq!(plain_unix_path(a), None, "{a}");
        }
    }
}
