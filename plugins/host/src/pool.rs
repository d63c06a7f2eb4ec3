//! The threads a plugin is called on.
//!
//! A native call cannot be cancelled. So each call runs on a thread of the
//! plugin's own pool, the caller waits at most the timeout, and a call past
//! its deadline is simply left running: the pool counts it as stuck and
//! starts another thread for the next call, so stuck calls never hold up
//! the others (nor another plugin's, which has its own pool). When
//! [`MAX_STUCK`] calls are stuck at once the plugin is unhealthy and calls
//! fail fast until some of them return.

use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lex_align_plugin_abi::{CallFn, FreeResponseFn};

use crate::messages::{check_answer, Answer, Op, MAX_ANSWER_BYTES};
use crate::CallError;

/// Calls stuck past their deadline at which the plugin is unhealthy.
pub const MAX_STUCK: usize = 64;
/// Calls in flight (stuck ones included) past which new calls fail fast.
pub const MAX_IN_FLIGHT: usize = 512;
/// Idle threads kept per plugin; more exit when their call returns.
const MAX_IDLE: usize = 8;

pub(crate) type Done = Box<dyn FnOnce(Result<Answer, CallError>) + Send>;

struct Job {
    id: u64,
    op: &'static str,
    request: CString,
    done: Done,
}

/// The plugin's two functions. The pointers come from a library that is
/// never unloaded, and the ABI requires `call` to be thread-safe.
#[derive(Clone, Copy)]
pub(crate) struct Native {
    pub call: CallFn,
    pub free: FreeResponseFn,
}

impl Native {
    fn invoke(&self, request: &CStr) -> Result<Vec<u8>, CallError> {
        // SAFETY: `request` is NUL-terminated and outlives the call; the
        // function pointers are the plugin's, valid forever (never unloaded).
        let answer: *mut c_char = unsafe { (self.call)(request.as_ptr()) };
        if answer.is_null() {
            return Err(CallError::Invalid("answered NULL".into()));
        }
        // SAFETY: a non-NULL answer is a NUL-terminated string that stays
        // the plugin's until handed back below, exactly once.
        let bytes = unsafe { CStr::from_ptr(answer) }.to_bytes();
        let copy = if bytes.len() > MAX_ANSWER_BYTES {
            Err(CallError::Invalid(format!(
                "answer of {} bytes is over the {MAX_ANSWER_BYTES}-byte limit",
                bytes.len()
            )))
        } else {
            Ok(bytes.to_vec())
        };
        // SAFETY: see above; `bytes` is not used after this.
        unsafe { (self.free)(answer) };
        copy
    }
}

#[derive(Default)]
struct State {
    /// One sender per idle thread.
    idle: Vec<mpsc::Sender<Job>>,
    /// Calls in flight: id → deadline.
    in_flight: HashMap<u64, Instant>,
    next_id: u64,
}

pub(crate) struct Pool {
    name: String,
    native: Native,
    timeout: Duration,
    state: Mutex<State>,
}

impl Pool {
    pub fn new(name: String, native: Native, timeout: Duration) -> Arc<Pool> {
        Arc::new(Pool {
            name,
            native,
            timeout,
            state: Mutex::new(State::default()),
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stuck_in(state: &State, now: Instant) -> usize {
        // Cheap while few calls are in flight; only counted when it matters.
        if state.in_flight.len() < MAX_STUCK {
            return 0;
        }
        state.in_flight.values().filter(|d| **d <= now).count()
    }

    /// Calls running past their deadline now.
    pub fn stuck(&self) -> usize {
        let st = self.lock();
        st.in_flight
            .values()
            .filter(|d| **d <= Instant::now())
            .count()
    }

    /// Starts one call; `done` gets its checked answer on a pool thread.
    /// The caller stops waiting at [`Pool::timeout`]. Fails at once when the
    /// plugin is unhealthy or overloaded.
    pub fn submit(self: &Arc<Self>, op: &Op, done: Done) -> Result<(), CallError> {
        let request = CString::new(op.to_json())
            .map_err(|_| CallError::Internal("request contains NUL".into()))?;
        let mut st = self.lock();
        let now = Instant::now();
        let stuck = Self::stuck_in(&st, now);
        if stuck >= MAX_STUCK {
            return Err(CallError::Unhealthy { stuck });
        }
        if st.in_flight.len() >= MAX_IN_FLIGHT {
            return Err(CallError::Busy);
        }
        st.next_id += 1;
        let id = st.next_id;
        st.in_flight.insert(id, now + self.timeout);
        let job = Job {
            id,
            op: op.name(),
            request,
            done,
        };
        let job = match st.idle.pop() {
            Some(tx) => match tx.send(job) {
                Ok(()) => return Ok(()),
                // Its thread is gone (cannot happen: threads leave the
                // idle list before exiting); start another.
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        drop(st);
        let pool = self.clone();
        let (tx, rx) = mpsc::channel();
        tx.send(job).expect("the receiver is alive");
        std::thread::Builder::new()
            .name(format!("plugin:{}", self.name))
            .spawn(move || pool.work(tx, rx))
            .map(|_| ())
            .map_err(|e| {
                self.lock().in_flight.remove(&id);
                CallError::Internal(format!("cannot start a plugin thread: {e}"))
            })
    }

    fn work(self: Arc<Self>, tx: mpsc::Sender<Job>, rx: mpsc::Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            let answer = self
                .native
                .invoke(&job.request)
                .and_then(|bytes| check_answer(job.op, &bytes));
            // A caller's callback must not take a pool thread down.
            let _ = catch_unwind(AssertUnwindSafe(move || (job.done)(answer)));
            let mut st = self.lock();
            st.in_flight.remove(&job.id);
            if st.idle.len() >= MAX_IDLE {
                return;
            }
            st.idle.push(tx.clone());
        }
    }

    /// One call, waiting at most the timeout (blocking).
    pub fn call(self: &Arc<Self>, op: &Op) -> Result<Answer, CallError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(
            op,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        match rx.recv_timeout(self.timeout) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(CallError::Timeout(self.timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(CallError::Internal("the plugin thread went away".into()))
            }
        }
    }
}
