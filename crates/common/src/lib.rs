//! The few pieces every Firebreak program shares, the console and the servers alike:
//! the one source of "now" (`clock`), the process's TLS provider and stop signal
//! (`process`), and logging to a file (`logging`). Nothing here knows about incidents,
//! clusters or windows.

pub mod clock;
pub mod logging;
pub mod process;
