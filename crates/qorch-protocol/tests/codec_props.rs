//! Property tests of the wire codec: round trips, and garbage or corrupted input is an error,
//! never a panic.

use proptest::prelude::*;
use qorch_protocol::{
    Address, AgentId, ClusterId, CorrelationId, Deadline, Envelope, Priority, SubClusterId,
    WireCodec,
};

fn address() -> impl Strategy<Value = Address> {
    prop_oneof![
        Just(Address::Orchestrator),
        any::<u32>().prop_map(|i| Address::Cluster(ClusterId(i))),
        any::<u32>().prop_map(|i| Address::SubCluster(SubClusterId(i))),
        any::<u32>().prop_map(|i| Address::Agent(AgentId(i))),
    ]
}

fn priority() -> impl Strategy<Value = Priority> {
    (0..4_usize).prop_map(|i| Priority::from_lane(i).unwrap())
}

fn envelope() -> impl Strategy<Value = Envelope<(String, Vec<u8>, f64)>> {
    (
        address(),
        address(),
        priority(),
        any::<u64>(),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        any::<bool>(),
        (
            ".{0,40}",
            proptest::collection::vec(any::<u8>(), 0..200),
            -1e9..1e9_f64,
        ),
    )
        .prop_map(
            |(from, to, priority, seq, corr, deadline, ack, payload)| Envelope {
                from,
                to,
                priority,
                seq,
                correlation: corr.map(CorrelationId),
                deadline: deadline.map(Deadline),
                ack_required: ack,
                payload,
            },
        )
}

type Payload = (String, Vec<u8>, f64);

proptest! {
    #[test]
    fn envelopes_round_trip(env in envelope()) {
        let codec = WireCodec::default();
        let bytes = codec.encode(&env).unwrap();
        let back: Envelope<Payload> = codec.decode(&bytes).unwrap();
        prop_assert_eq!(back, env);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let codec = WireCodec::default();
        let _ = codec.decode::<Envelope<Payload>>(&bytes);
        let _ = codec.decode::<Vec<String>>(&bytes);
    }

    #[test]
    fn any_changed_byte_is_detected(env in envelope(), at in any::<prop::sample::Index>(), delta in 1..=255_u8) {
        let codec = WireCodec::default();
        let mut bytes = codec.encode(&env).unwrap();
        let i = at.index(bytes.len());
        bytes[i] = bytes[i].wrapping_add(delta);
        prop_assert!(codec.decode::<Envelope<Payload>>(&bytes).is_err());
    }

    #[test]
    fn truncated_frames_are_errors(env in envelope(), cut in any::<prop::sample::Index>()) {
        let codec = WireCodec::default();
        let bytes = codec.encode(&env).unwrap();
        let len = cut.index(bytes.len());
        prop_assert!(codec.decode::<Envelope<Payload>>(&bytes[..len]).is_err());
    }
}

#[test]
fn frames_concatenate_in_one_buffer() {
    let codec = WireCodec::default();
    let mut buf = Vec::new();
    codec.encode_into(&1_u32, &mut buf).unwrap();
    let first_len = buf.len();
    codec.encode_into(&"two", &mut buf).unwrap();
    assert_eq!(codec.decode::<u32>(&buf[..first_len]).unwrap(), 1);
    assert_eq!(codec.decode::<String>(&buf[first_len..]).unwrap(), "two");
}
