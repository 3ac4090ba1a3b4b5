//! Fault knobs for tests: `--faults drop_every=500,duplicate=0.01,reorder=0.01,malformed=0.005,action_delay_ms=2000,action_fail=1`.

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Close each stream connection abruptly after this many events.
    pub drop_every: Option<u64>,
    /// Probability that an event is sent twice.
    pub duplicate: f64,
    /// Probability that an event is held back and sent after the next one.
    pub reorder: f64,
    /// Probability that a malformed frame is sent before an event.
    pub malformed: f64,
    /// Delay before the action API answers a mutating request.
    pub action_delay_ms: u64,
    /// Probability that an accepted action fails when it starts running.
    pub action_fail: f64,
}

impl Faults {
    pub fn parse(spec: &str) -> Result<Faults> {
        let mut f = Faults::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .with_context(|| format!("fault {part:?} is not KEY=VALUE"))?;
            let prob = || -> Result<f64> {
                let p: f64 = value
                    .parse()
                    .with_context(|| format!("{key}: {value:?} is not a number"))?;
                if !(0.0..=1.0).contains(&p) {
                    bail!("{key}: {p} is not a probability between 0 and 1");
                }
                Ok(p)
            };
            match key {
                "drop_every" => {
                    let n: u64 = value.parse().with_context(|| format!("drop_every: {value:?} is not a count"))?;
                    f.drop_every = (n > 0).then_some(n);
                }
                "duplicate" => f.duplicate = prob()?,
                "reorder" => f.reorder = prob()?,
                "malformed" => f.malformed = prob()?,
                "action_delay_ms" => {
                    f.action_delay_ms = value.parse().with_context(|| format!("action_delay_ms: {value:?}"))?
                }
                "action_fail" => f.action_fail = prob()?,
                other => bail!(
                    "unknown fault {other:?}: known are drop_every, duplicate, reorder, malformed, action_delay_ms, action_fail"
                ),
            }
        }
        Ok(f)
    }
}

/// The malformed frames the simulator can send, one of each kind a client must survive.
pub fn malformed_frame(n: u64) -> MalformedFrame {
    match n % 6 {
        0 => MalformedFrame::Text("{\"specversion\":\"1.0\",\"id\":".into()),
        1 => MalformedFrame::Text("[1,2,3]".into()),
        2 => MalformedFrame::Text(
            "{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"/clusters/sim\",\"type\":\"dev.firebreak.node.down\",\
             \"time\":\"2026-11-27T03:00:00Z\",\"datacontenttype\":\"application/json\",\"sequence\":0,\"data\":{\"node\":42}}"
                .into(),
        ),
        3 => MalformedFrame::Text(
            "{\"specversion\":\"1.0\",\"id\":\"y\",\"source\":\"/clusters/sim\",\"type\":\"com.example.unknown\",\
             \"time\":\"2026-11-27T03:00:00Z\",\"datacontenttype\":\"application/json\",\"sequence\":0,\"data\":{}}"
                .into(),
        ),
        4 => MalformedFrame::Binary(vec![0xff, 0xfe, 0x00, 0x42]),
        _ => MalformedFrame::Text(format!("{{\"padding\":\"{}\"}}", "x".repeat(firebreak_protocol::MAX_FRAME_BYTES + 1024))),
    }
}

pub enum MalformedFrame {
    Text(String),
    Binary(Vec<u8>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_knob_and_refuses_nonsense() {
        let f = Faults::parse("drop_every=100, duplicate=0.1,reorder=0.2,malformed=0.01,action_delay_ms=1500,action_fail=1")
            .unwrap();
        assert_eq!(f.drop_every, Some(100));
        assert_eq!(f.action_delay_ms, 1500);
        assert_eq!(f.action_fail, 1.0);
        assert!(
            Faults::parse("duplicate=2").is_err(),
            "a probability above 1 is refused"
        );
        assert!(
            Faults::parse("explode=1").is_err(),
            "an unknown knob is refused, not ignored"
        );
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
    }
}
