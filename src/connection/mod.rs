//! A connection's state without I/O: the rules ([`machine`]) and the output buffer
//! the kernel sends from ([`output`]). The engine (`runtime/`) moves bytes and
//! completions between its ring and these; the [`Transport`](crate::Transport) a
//! protocol writes to is a view of the same state.

pub(crate) mod machine;
pub(crate) mod output;

pub use machine::Backpressure;
