//! Panics inside agent hooks are supervised events, not crashes: while a hook runs, the
//! process-wide panic hook reports the panic through `tracing` instead of printing it. Every
//! other panic goes to the hook that was installed before (installed once, on first use).

use std::any::Any;
use std::cell::Cell;
use std::sync::Once;

thread_local! {
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

static INSTALL: Once = Once::new();

/// Installs the hook (once per process); called when a node starts.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_HOOK.with(Cell::get) {
                tracing::debug!(panic = %info, "agent hook panicked (supervised)");
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f` (an agent hook wrapped in `catch_unwind`) with supervised-panic reporting.
pub(crate) fn run<R>(f: impl FnOnce() -> R) -> R {
    let was = IN_HOOK.with(|c| c.replace(true));
    let r = f();
    IN_HOOK.with(|c| c.set(was));
    r
}

/// The message of a panic payload.
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_owned()
    }
}
