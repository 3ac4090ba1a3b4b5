//! The few pieces every Firebreak program shares, the console and the servers alike:
//! the one source of "now" (`clock`), the process's TLS provider and stop signal
//! (`process`), logging to a file (`logging`), and untrusted text cut short and made safe
//! for a terminal (`text`). Nothing here knows about incidents,
//! clusters or windows.

pub mod certs;
pub mod clock;
pub mod logging;
pub mod process;
pub mod text;
