//! A minimal `block_on` for the blocking halves of the mailbox API: polls a future on the
//! current thread and parks between polls. The waker (which unparks this thread) is built once
//! per thread, so a blocking call that completes at once does not allocate.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    static THREAD_WAKER: Waker = Waker::from(Arc::new(Unpark(thread::current())));
}

/// Runs `fut` to completion on this thread.
pub(super) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    THREAD_WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            thread::park();
        }
    })
}

/// Runs `fut` on this thread until it completes, or until `deadline` passes (then `None`).
/// Without a deadline it waits as long as it takes. For the blocking halves of async APIs
/// (the mailbox's, the runtime handle's): no executor, no timer thread, no allocation once
/// the thread's waker exists.
///
/// ```
/// use std::time::{Duration, Instant};
/// let soon = Some(Instant::now() + Duration::from_millis(10));
/// assert_eq!(qorch_protocol::block_on_until(async { 7 }, soon), Some(7));
/// assert_eq!(qorch_protocol::block_on_until(std::future::pending::<()>(), soon), None);
/// ```
pub fn block_on_until<F: Future>(fut: F, deadline: Option<Instant>) -> Option<F::Output> {
    let mut fut = pin!(fut);
    THREAD_WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return Some(out);
            }
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return None;
                    }
                    thread::park_timeout(deadline - now);
                }
            }
        }
    })
}
