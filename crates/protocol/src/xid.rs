//! NVIDIA's XID error codes as an on-call engineer needs them: what the code means, and
//! what NVIDIA's XID catalog recommends doing about it. Codes not listed say to look them
//! up rather than guess.

/// What to do about an XID, mildest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum XidAction {
    /// Usually the application's fault: restart it (and look at its logs).
    RestartApplication,
    /// Look at what came before: the code follows or reports another error.
    Investigate,
    /// Reset the GPU (drain its work first).
    ResetGpu,
    /// Drain the node: its GPU is gone or failing until a reset or a repair.
    DrainNode,
    /// Replace the GPU (a hardware fault that will come back).
    ReplaceGpu,
}

impl XidAction {
    pub fn words(self) -> &'static str {
        match self {
            XidAction::RestartApplication => "restart the application",
            XidAction::Investigate => "look at the errors before it",
            XidAction::ResetGpu => "drain the node and reset the GPU",
            XidAction::DrainNode => "drain the node",
            XidAction::ReplaceGpu => "drain the node and replace the GPU",
        }
    }

    /// Whether the GPU cannot be trusted with work until someone acts (the node's work
    /// should move): every action but restarting the application or looking.
    pub fn takes_the_gpu_out(self) -> bool {
        self >= XidAction::ResetGpu
    }
}

/// What `xid` means, and what to do.
pub fn describe(xid: u32) -> (&'static str, Option<XidAction>) {
    use XidAction::*;
    match xid {
        13 => ("graphics engine exception", Some(RestartApplication)),
        31 => ("GPU memory page fault", Some(RestartApplication)),
        43 => ("GPU stopped processing", Some(RestartApplication)),
        45 => (
            "preemptive cleanup after an earlier error",
            Some(Investigate),
        ),
        48 => ("double-bit ECC error", Some(ResetGpu)),
        63 => ("ECC page retirement or row remap recorded", Some(ResetGpu)),
        64 => ("ECC page retirement or row remap failed", Some(ReplaceGpu)),
        74 => ("NVLink error", Some(ResetGpu)),
        79 => ("GPU has fallen off the bus", Some(DrainNode)),
        92 => ("high single-bit ECC error rate", Some(ReplaceGpu)),
        94 => ("contained ECC error", Some(RestartApplication)),
        95 => ("uncontained ECC error", Some(ResetGpu)),
        119 => ("GSP RPC timeout", Some(ResetGpu)),
        120 => ("GSP error", Some(ResetGpu)),
        _ => ("not in Firebreak's list", None),
    }
}

/// "XID 79 (GPU has fallen off the bus): drain the node".
pub fn sentence(xid: u32) -> String {
    match describe(xid) {
        (meaning, Some(action)) => format!("XID {xid} ({meaning}): {}", action.words()),
        (_, None) => format!("XID {xid}: look it up in NVIDIA's XID catalog"),
    }
}
