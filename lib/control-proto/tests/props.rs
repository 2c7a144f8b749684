//! Whatever bytes arrive, decoding answers an error or a message that re-encodes to the
//! same frame; nothing panics.

use axolotl_control_proto::{
    BitTarget, Deframer, Error, FRAME_BUFFER, FaultKind, Frame, MAX_FRAME, Reply, Request, VmOp,
    decode, encode, name, serve,
};
use proptest::prelude::*;

fn pd_name() -> impl Strategy<Value = axolotl_control_proto::Name> {
    "[a-z_0-9]{0,64}".prop_map(|s| name(&s).unwrap())
}

fn request() -> impl Strategy<Value = Request> {
    let kind = prop::sample::select(FaultKind::ALL.to_vec());
    let op = prop::sample::select(vec![VmOp::Start, VmOp::Stop, VmOp::Reboot]);
    prop_oneof![
        any::<u8>().prop_map(|index| Request::Status { index }),
        any::<u32>().prop_map(|seq| Request::Log { seq }),
        (pd_name(), proptest::option::of(any::<u32>()))
            .prop_map(|(pd, if_generation)| Request::Restart { pd, if_generation }),
        pd_name().prop_map(|pd| Request::Hold { pd }),
        pd_name().prop_map(|pd| Request::Release { pd }),
        (pd_name(), op).prop_map(|(name, op)| Request::Vm { name, op }),
        (
            pd_name(),
            kind,
            proptest::option::of((any::<u8>(), any::<u8>()))
        )
            .prop_map(|(pd, kind, at)| Request::Inject {
                pd,
                kind,
                at: at.map(|(register, bit)| BitTarget { register, bit }),
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn requests_round_trip(id in any::<u16>(), req in request()) {
        let mut out = [0u8; FRAME_BUFFER];
        let n = encode(id, &req, &mut out).unwrap();
        prop_assert_eq!(out[n - 1], 0);
        prop_assert!(!out[..n - 1].contains(&0));
        prop_assert_eq!(decode::<Request>(&mut out[..n - 1]), Ok((id, req)));
    }

    /// Arbitrary bytes: an error, or a request that re-encodes to exactly those bytes.
    #[test]
    fn arbitrary_frames_never_panic(bytes in prop::collection::vec(1u8.., 0..600)) {
        let mut f = bytes.clone();
        match decode::<Request>(&mut f) {
            Ok((id, req)) => {
                let mut out = [0u8; FRAME_BUFFER];
                let n = encode(id, &req, &mut out).unwrap();
                prop_assert_eq!(&out[..n - 1], &bytes[..]);
            }
            Err((_, e)) => {
                if bytes.len() > MAX_FRAME {
                    prop_assert_eq!(e, Error::Oversize);
                }
            }
        }
    }

    /// Every frame of a good request with bytes changed, cut or added is answered, with an
    /// error unless the change left a valid frame (CRC collisions aside, never).
    #[test]
    fn damaged_frames_get_error_replies(
        id in any::<u16>(),
        req in request(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut out = [0u8; FRAME_BUFFER];
        let n = encode(id, &req, &mut out).unwrap();
        let mut f = out[..n - 1].to_vec();
        for (at, b) in &edits {
            let i = at.index(f.len());
            f[i] = (*b).max(1);
        }
        if truncate {
            f.truncate(cut.index(f.len() + 1));
        }
        let changed = f != out[..n - 1];
        let mut reply = [0u8; FRAME_BUFFER];
        let m = serve(&mut f, |_| Reply::Done, &mut reply);
        prop_assert!(m > 1);
        let (_, r) = decode::<Reply>(&mut reply[..m - 1]).unwrap();
        if changed {
            prop_assert!(matches!(r, Reply::Error(_)), "{:?}", r);
        } else {
            prop_assert_eq!(r, Reply::Done);
        }
    }

    /// A stream of frames and noise through the deframer: every good frame comes out whole,
    /// whatever noise (without delimiters) preceded its delimiter-separated start.
    #[test]
    fn the_deframer_recovers_after_noise(
        reqs in prop::collection::vec(request(), 1..5),
        noise in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 5),
    ) {
        let mut stream = Vec::new();
        let mut out = [0u8; FRAME_BUFFER];
        for (i, r) in reqs.iter().enumerate() {
            stream.extend_from_slice(&noise[i]);
            stream.push(0);
            let n = encode(i as u16, r, &mut out).unwrap();
            stream.extend_from_slice(&out[..n]);
        }
        let mut d = Deframer::<{ MAX_FRAME }>::new();
        let mut good = Vec::new();
        for b in stream {
            if let Some(Frame::Complete(f)) = d.push(b)
                && let Ok((id, r)) = decode::<Request>(f)
            {
                good.push((id, r));
            }
        }
        let want: Vec<_> = reqs.into_iter().enumerate().map(|(i, r)| (i as u16, r)).collect();
        prop_assert_eq!(good, want);
    }
}
