//! Corelet mode: handlers run in a pool of reusable, isolated child processes.
//!
//! The child is the application's own binary, re-executed with the environment variable
//! [`FD_ENV`](child::FD_ENV) naming its ends of two pipes; `main` calls [`serve_if_corelet`] first, which
//! in a child serves requests until the parent goes away and exits, and otherwise returns.
//! The parent side is [`CoreletPool`]: `execute(request, deadline, on_publish)` lends a child,
//! sends the request, forwards published events, and returns the reply, or a
//! [`CoreletError`] saying how the child timed out, crashed or misbehaved.
//!
//! This layer moves any serde types (as postcard, see `message.rs`) and knows nothing of events
//! or handlers; the mode
//! on top of it chooses the request, reply and publication types. How the pieces fit, and why,
//! is in `README.md` next to this file.
//!
//! | file | responsibility |
//! |---|---|
//! | `frame.rs` | length-prefixed, bounded frames |
//! | `message.rs` | the messages, their encoding and the protocol version |
//! | `json.rs` | JSON text inside messages, for values without a fixed shape |
//! | `duplex.rs` | the channel's two pipes, and the cut that ends the parent's waits |
//! | `channel.rs` | buffered frame I/O on the pipes, within deadlines |
//! | `panic.rs` | catching handler panics as data |
//! | `child.rs` | the child's entry point and serve loop |
//! | `spawn.rs` | the child's command line and inherited descriptors |
//! | `confine.rs` | the child's environment allow-list and landlock rules |
//! | `process.rs` | one child: handshake, request, kill, reap |
//! | `keeper.rs` | the thread that starts and retires children |
//! | `pool.rs` | lending children, replacing the dead, backing off |
//! | `config.rs` | settings (with the human units of `crate::unit`) |
//! | `error.rs`, `stats.rs` | what callers get back |

mod channel;
mod child;
mod config;
mod confine;
mod duplex;
mod error;
mod frame;
pub(crate) mod json;
mod keeper;
mod message;
mod panic;
mod pool;
mod process;
mod spawn;
mod stats;

#[cfg(test)]
mod test;

pub use config::{CoreletConfig, CoreletOutput};
pub use confine::AllowedPaths;

// The seam for the mode layer.
pub(crate) use {
    child::{serve_if_corelet, ChildLink},
    error::{CoreletError, Payload},
    frame::FrameError,
    message::DecodeError,
    pool::CoreletPool,
    stats::CoreletStats,
};

// What crosses the channel, for the fuzz targets (`crate::__fuzz`).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use {
    channel::Channel,
    child::decode_request,
    duplex::{Cut, Duplex},
    message::{decode, decode_greeting, ChildMessage, Greeting, PROTOCOL_VERSION},
};

// For writing the fuzz seeds from busbar's own messages (`mode::corelet::seeds`).
#[cfg(test)]
pub(crate) use {
    message::{encode, ParentMessage},
    panic::PanicInfo,
};
