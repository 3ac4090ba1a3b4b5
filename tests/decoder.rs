//! The event decoder takes whatever arrives on the wire: no input may panic it.

use firebreak::protocol::events::{decode, Frame};
use proptest::prelude::*;
use serde_json::{json, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn valid_event() -> Value {
    json!({
        "specversion": "1.0", "id": "01a21af3-47e8-79a8-8546-504e84c8b533", "source": "/clusters/sim",
        "type": "dev.firebreak.node.down", "time": "2026-11-27T03:01:21.000Z", "subject": "node/n1",
        "datacontenttype": "application/json", "sequence": 7,
        "data": {"node": "n1", "pool": "p", "region": "us-east", "service": "recommendations",
                 "reason": "oom", "pool_nodes_down": 2, "pool_nodes_total": 8}
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = decode(&text);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        let _ = decode(&value.to_string());
    }

    #[test]
    fn a_valid_event_with_one_field_replaced_never_panics(
        field in prop::sample::select(vec!["specversion", "id", "source", "type", "time", "sequence", "data", "subject"]),
        replacement in any_json(),
    ) {
        let mut event = valid_event();
        event[field] = replacement;
        let _ = decode(&event.to_string());
    }

    #[test]
    fn a_valid_event_with_data_replaced_is_refused_or_accepted_never_panics(data in any_json()) {
        let mut event = valid_event();
        event["data"] = data;
        if let Ok(Frame::Event(e)) = decode(&event.to_string()) {
            // Accepted data must have node.down's required fields.
            prop_assert!(e.data.get("node").is_some());
        }
    }

    #[test]
    fn truncating_a_valid_event_anywhere_never_panics(cut in 0usize..400) {
        let text = valid_event().to_string();
        let cut = text.char_indices().map(|(i, _)| i).take_while(|i| *i <= cut).last().unwrap_or(0);
        let _ = decode(&text[..cut]);
    }
}

#[test]
fn the_valid_event_decodes() {
    // The property tests mutate this event: it must itself be valid.
    assert!(matches!(
        decode(&valid_event().to_string()),
        Ok(Frame::Event(_))
    ));
}
