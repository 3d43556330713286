//! Token tests: each attack from `docs/capability_model.md` and the
//! attenuation laws as properties.

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::Sha256;

const NOW: u64 = 1_800_000_000;
const HOUR: u64 = 3600;

fn key() -> Key {
    Key::from_bytes([42; 32])
}

fn perms(s: &str) -> Perms {
    Perms::parse_list(s).unwrap()
}

fn root(resource: &str, p: &str, exp: u64) -> Token {
    issue(&key(), "agent-a", resource, perms(p), NOW - HOUR, exp).unwrap()
}

fn never_revoked(_: &str) -> bool {
    false
}

/// What an outsider holding only `text` can do: append a block of its
/// choosing with a valid MAC, since the final signature is the next key.
fn append_by_hand(text: &str, block: &[u8]) -> String {
    let (body, sig) = text.rsplit_once('.').unwrap();
    let sig = B64.decode(sig).unwrap();
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&sig).unwrap();
    m.update(block);
    format!("{body}.{}.{}", B64.encode(block), B64.encode(m.finalize().into_bytes()))
}

fn child_json(parent: &Claims, id: &str, res: &str, p: &str, iat: u64, exp: u64) -> Vec<u8> {
    serde_json::to_vec(&Claims {
        id: id.to_owned(),
        subject: parent.subject.clone(),
        resource: res.to_owned(),
        perms: perms(p),
        issued_at: iat,
        expires_at: exp,
        parent: parent.id.clone(),
    })
    .unwrap()
}

/// The error's messages never carry token text or signature bytes.
fn assert_no_secret(err: &Denied, text: &str) {
    let msg = err.to_string();
    let dbg = format!("{err:?}");
    for part in text.trim_start_matches(TOKEN_PREFIX).split('.').filter(|p| p.len() >= 8) {
        assert!(!msg.contains(part) && !dbg.contains(part), "{msg} / {dbg} quotes token text");
    }
}

fn verify_err(text: &str, now: u64) -> Denied {
    let err = verify(&key(), text, now, never_revoked).unwrap_err();
    assert_no_secret(&err, text);
    err
}

#[test]
fn encode_parse_round_trip() {
    let t = root("service:agent-a-*", "deploy,status", NOW + HOUR);
    let text = t.encode();
    assert!(text.starts_with("solo1.") && text.split('.').count() == 3);
    let back = Token::parse(&text).unwrap();
    assert_eq!(back.chain(), t.chain());
    assert_eq!(back.encode(), text);
    assert_eq!(back.id(), t.claims().id);
    assert_eq!(t.claims().parent, "");
    assert_eq!(t.id().len(), 32);

    let r = Restriction { resource: Some("service:agent-a-web".into()), ..Default::default() };
    let child = attenuate(&t, r, NOW).unwrap();
    let text = child.encode();
    assert_eq!(text.len(), child.encoded_len());
    let back = Token::parse(&text).unwrap();
    assert_eq!(back.chain().len(), 2);
    assert_eq!(back.chain()[1].parent, t.id());
    assert_eq!(back.encode(), text);
    let v = verify(&key(), &text, NOW, never_revoked).unwrap();
    assert_eq!(v.claims(), child.claims());
}

#[test]
fn block_json_has_the_documented_fields() {
    let t = root("*", "deploy", 0);
    let json: serde_json::Value = serde_json::from_slice(&t.raw[0]).unwrap();
    let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["exp", "iat", "id", "parent", "perms", "res", "sub"]);
    assert_eq!(json["perms"], serde_json::json!(["deploy"]));
}

#[test]
fn forged_with_another_key_is_bad_signature() {
    let other = Key::from_bytes([7; 32]);
    let t = issue(&other, "agent-a", "*", Perms::all(), NOW, 0).unwrap();
    assert_eq!(verify_err(&t.encode(), NOW), Denied::BadSignature);
    assert!(verify(&other, &t.encode(), NOW, never_revoked).is_ok());
}

#[test]
fn tampered_block_is_bad_signature() {
    let t = root("service:web", "status", 0);
    let text = t.encode();
    let parts: Vec<&str> = text.split('.').collect();
    let json = String::from_utf8(B64.decode(parts[1]).unwrap()).unwrap();
    let forged = json.replace(r#"["status"]"#, r#"["kill"]"#);
    assert_ne!(forged, json);
    let forged = format!("solo1.{}.{}", B64.encode(forged), parts[2]);
    // Well-formed, so only the MAC catches it.
    assert!(Token::parse(&forged).is_ok());
    assert_eq!(verify_err(&forged, NOW), Denied::BadSignature);
}

#[test]
fn tampered_signature_is_bad_signature() {
    let t = root("*", "status", 0);
    let mut sig = t.sig;
    sig[31] ^= 1;
    let text = format!("{}.{}", t.encode().rsplit_once('.').unwrap().0, B64.encode(sig));
    assert_eq!(verify_err(&text, NOW), Denied::BadSignature);
}

#[test]
fn truncated_chain_is_bad_signature() {
    let t = root("service:*", "deploy,kill", 0);
    let child =
        attenuate(&t, Restriction { perms: Some(perms("deploy")), ..Default::default() }, NOW).unwrap().encode();
    let parts: Vec<&str> = child.split('.').collect();
    // Drop the narrowing block, keep the final signature.
    let stripped = format!("solo1.{}.{}", parts[1], parts[3]);
    assert_eq!(verify_err(&stripped, NOW), Denied::BadSignature);
}

#[test]
fn expired_and_not_yet_valid() {
    let t = root("*", "status", NOW + 10).encode();
    assert!(verify(&key(), &t, NOW + 9, never_revoked).is_ok());
    let err = verify_err(&t, NOW + 10);
    assert!(matches!(&err, Denied::Expired { at, .. } if *at == NOW + 10), "{err:?}");
    assert!(err.to_string().contains("expired at 2027-01-15T08:00:10Z"), "{err}");

    let future = issue(&key(), "agent-a", "*", perms("status"), NOW + 61, 0).unwrap();
    let err = verify_err(&future.encode(), NOW);
    assert_eq!(err, Denied::NotYetValid { id: future.id().to_owned() });
    assert!(verify(&key(), &future.encode(), NOW + 1, never_revoked).is_ok(), "60 s of skew are allowed");
}

#[test]
fn revoked_and_parent_revoked() {
    let t = root("*", "status,kill", 0);
    let child = attenuate(&t, Restriction { perms: Some(perms("status")), ..Default::default() }, NOW).unwrap();
    let (root_id, child_id) = (t.id().to_owned(), child.id().to_owned());

    let err = verify(&key(), &t.encode(), NOW, |id| id == root_id).unwrap_err();
    assert_eq!(err, Denied::Revoked { id: root_id.clone() });
    assert_eq!(err.to_string(), format!("token {root_id} has been revoked"));

    let asked = std::cell::RefCell::new(Vec::new());
    let err = verify(&key(), &child.encode(), NOW, |id| {
        asked.borrow_mut().push(id.to_owned());
        id == root_id
    })
    .unwrap_err();
    assert_eq!(err, Denied::ParentRevoked { id: child_id.clone(), parent: root_id.clone() });
    assert_eq!(*asked.borrow(), [root_id.clone(), child_id.clone()], "every id in the chain is asked");
    assert!(verify(&key(), &child.encode(), NOW, |id| id == "0".repeat(32)).is_ok());
}

#[test]
fn appended_wider_blocks_pass_the_mac_but_not_the_narrowing_check() {
    let t = root("service:agent-a-*", "deploy,status", NOW + HOUR);
    let text = t.encode();
    let p = t.claims();
    let id = "0123456789abcdef0123456789abcdef";

    // Control: a narrower hand-made block verifies, so the MAC is right
    // and the refusals below come from the narrowing check.
    let ok = append_by_hand(&text, &child_json(p, id, "service:agent-a-1", "status", NOW, NOW + 60));
    assert_eq!(verify(&key(), &ok, NOW, never_revoked).unwrap().claims().perms, perms("status"));

    let cases = [
        ("perms", child_json(p, id, "service:agent-a-1", "status,kill", NOW, NOW + 60), "'kill'"),
        ("resource", child_json(p, id, "service:*", "status", NOW, NOW + 60), "'service:*'"),
        ("expires_at", child_json(p, id, "service:agent-a-1", "status", NOW, 0), "never"),
        ("expires_at", child_json(p, id, "service:agent-a-1", "status", NOW, NOW + 2 * HOUR), "later"),
        ("issued_at", child_json(p, id, "service:agent-a-1", "status", NOW - 2 * HOUR, NOW + 60), "before"),
    ];
    for (field, block, detail) in cases {
        let wider = append_by_hand(&text, &block);
        let err = verify_err(&wider, NOW);
        match &err {
            Denied::Widened { id: got, what } => {
                assert_eq!(got, id);
                assert!(what.starts_with(field) && what.contains(detail), "{field}: {what}");
            }
            other => panic!("{field}: expected Widened, got {other:?}"),
        }
        assert!(err.to_string().starts_with(&format!("token {id} widens its parent: {field}")), "{err}");
    }
}

#[test]
fn appended_blocks_must_link_to_their_parent_and_be_well_formed() {
    let t = root("*", "status", 0);
    let text = t.encode();
    let p = t.claims();
    let mut c: serde_json::Value =
        serde_json::from_slice(&child_json(p, &"a".repeat(32), "*", "status", NOW, 0)).unwrap();

    c["parent"] = "b".repeat(32).into();
    let err = verify_err(&append_by_hand(&text, c.to_string().as_bytes()), NOW);
    assert!(matches!(&err, Denied::Malformed(m) if m.contains("names parent")), "{err}");

    c["parent"] = p.id.clone().into();
    c["id"] = p.id.clone().into();
    let err = verify_err(&append_by_hand(&text, c.to_string().as_bytes()), NOW);
    assert!(matches!(&err, Denied::Malformed(m) if m.contains("more than once")), "{err}");

    c["id"] = "a".repeat(32).into();
    c["admin"] = true.into();
    let err = verify_err(&append_by_hand(&text, c.to_string().as_bytes()), NOW);
    assert!(matches!(&err, Denied::Malformed(m) if m.contains("block 1: has a field other than")), "{err}");
    assert!(!err.to_string().contains("admin"), "{err}");

    let err = verify_err(&append_by_hand(&text, &[0xff, 0xfe, b'{']), NOW);
    assert!(matches!(&err, Denied::Malformed(m) if m.contains("not valid JSON")), "{err}");

    c.as_object_mut().unwrap().remove("admin");
    c["perms"] = serde_json::json!(["status", "sudo"]);
    let err = verify_err(&append_by_hand(&text, c.to_string().as_bytes()), NOW);
    assert!(matches!(&err, Denied::Malformed(m) if m.contains("unknown permission")), "{err}");
    assert!(!err.to_string().contains("sudo"), "{err}");
}

#[test]
fn authorize_checks_permission_then_scope() {
    let t = verify(&key(), &root("service:agent-a-*", "deploy,status", 0).encode(), NOW, never_revoked).unwrap();
    assert_eq!(authorize(t.claims(), Perm::Deploy, "service:agent-a-web"), Ok(()));
    let err = authorize(t.claims(), Perm::Kill, "service:agent-a-web").unwrap_err();
    assert_eq!(err, Denied::MissingPermission { perm: Perm::Kill });
    assert_eq!(err.to_string(), "the token lacks permission 'kill'");
    let err = authorize(t.claims(), Perm::Deploy, "service:web").unwrap_err();
    assert_eq!(err.to_string(), "token covers 'service:agent-a-*', not 'service:web'");
    assert!(matches!(err, Denied::OutOfScope { .. }));
}

#[test]
fn malformed_inputs() {
    let good = root("*", "status", 0).encode();
    let sig = good.rsplit_once('.').unwrap().1.to_owned();
    let long = format!("solo1.{}.{sig}", "A".repeat(MAX_TOKEN_LEN));
    // (text, what the message says, whether verify finds it before the MAC)
    let cases: Vec<(String, &str, bool)> = vec![
        (String::new(), "empty", true),
        (long, "at most 8192", true),
        ("garbage".into(), "does not start with", true),
        ("solo1.".into(), "no claim block", true),
        (format!("solo1.{sig}"), "no claim block", true),
        ("solo1.é.ü".into(), "signature", true),
        (format!("solo1.é.{sig}"), "block 0 is not unpadded base64url", true),
        (format!("{good}="), "signature", true),
        (format!("{good} "), "signature", true),
        // Decodable but not claims: parse says why; verify, which checks the
        // MAC before reading any JSON, says the signature is wrong.
        (format!("solo1.{}.{sig}", B64.encode([0xff, 0xc0, 0x80])), "block 0: is not valid JSON", false),
        (format!("solo1.{}.{sig}", B64.encode(r#"{"id":"x"}"#)), "block 0: missing field", false),
    ];
    for (text, want, syntax) in cases {
        let err = Token::parse(&text).unwrap_err();
        assert!(matches!(&err, Denied::Malformed(m) if m.contains(want)), "{text:?}: {err}");
        assert_no_secret(&err, &good);
        let verified = verify_err(&text, NOW);
        assert_eq!(verified, if syntax { err } else { Denied::BadSignature }, "{text:?}");
    }
}

#[test]
fn chain_depth_is_limited() {
    let mut t = root("*", "status", 0);
    for _ in 1..MAX_DEPTH {
        t = attenuate(&t, Restriction::default(), NOW).unwrap();
    }
    assert_eq!(t.chain().len(), MAX_DEPTH);
    assert!(verify(&key(), &t.encode(), NOW, never_revoked).is_ok());
    let err = attenuate(&t, Restriction::default(), NOW).unwrap_err();
    assert!(matches!(&err, Denied::Malformed(m) if m.contains("already has 8 blocks")), "{err}");
    // A holder can still append a ninth block by hand; the verifier refuses it.
    let ninth = append_by_hand(&t.encode(), &child_json(t.claims(), &"c".repeat(32), "*", "status", NOW, 0));
    let err = verify_err(&ninth, NOW);
    assert!(matches!(&err, Denied::Malformed(m) if m.contains("9 blocks")), "{err}");
}

#[test]
fn issue_and_attenuate_validate_their_input() {
    let k = key();
    for (sub, res, p, iat, exp, want) in [
        ("", "*", "status", NOW, 0, "subject"),
        ("agent a", "*", "status", NOW, 0, "subject"),
        ("agent-a", "service:x*y", "status", NOW, 0, "last character"),
        ("agent-a", "*", "", NOW, 0, "at least one permission"),
        ("agent-a", "*", "status", NOW, NOW, "after issued_at"),
    ] {
        let err = issue(&k, sub, res, perms(p), iat, exp).unwrap_err();
        assert!(matches!(&err, Denied::Malformed(m) if m.contains(want)), "{err}");
    }
    let t = root("service:agent-a-*", "deploy", NOW + HOUR);
    let r = |perms, resource: &str, exp| Restriction {
        perms,
        resource: Some(resource.into()),
        expires_at: exp,
        ..Default::default()
    };
    let err = attenuate(&t, r(Some(Perms::all()), "service:agent-a-*", None), NOW).unwrap_err();
    assert!(matches!(&err, Denied::Widened { what, .. } if what.starts_with("perms (adds 'status', 'kill'")), "{err}");
    let err = attenuate(&t, r(None, "*", None), NOW).unwrap_err();
    assert!(matches!(&err, Denied::Widened { what, .. } if what.starts_with("resource")), "{err}");
    let err = attenuate(&t, r(None, "service:agent-a-1", Some(0)), NOW).unwrap_err();
    assert!(matches!(&err, Denied::Widened { what, .. } if what.starts_with("expires_at")), "{err}");
    let err = attenuate(&t, r(None, "service:agent-a-1", Some(NOW)), NOW).unwrap_err();
    assert!(matches!(&err, Denied::Malformed(m) if m.contains("after issued_at")), "{err}");
    let err = attenuate(&t, Restriction::default(), NOW + HOUR).unwrap_err();
    assert_eq!(err, Denied::Expired { id: t.id().to_owned(), at: NOW + HOUR });
    let sub = Restriction { subject: Some("agent-a.sub@worker".into()), ..Default::default() };
    assert_eq!(attenuate(&t, sub, NOW).unwrap().claims().subject, "agent-a.sub@worker");
}

#[test]
fn debug_output_hides_signature_and_key() {
    let t = root("*", "status", 0);
    let dbg = format!("{t:?}");
    let sig_b64 = t.encode().rsplit_once('.').unwrap().1.to_owned();
    assert!(!dbg.contains(&sig_b64) && !dbg.contains(&format!("{:?}", t.sig)), "{dbg}");
    assert!(!dbg.contains(&hex::encode(t.sig)));
    assert!(dbg.contains(t.id()));
    assert!(!format!("{:?}", key()).contains("42"));
}

#[test]
fn utc_formatting() {
    assert_eq!(format_utc(0), "never");
    assert_eq!(format_utc(1), "1970-01-01T00:00:01Z");
    assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(format_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(format_utc(4_107_542_399), "2100-02-28T23:59:59Z");
}

// ---- properties ----

const RESOURCES: &[&str] = &[
    "*",
    "service:*",
    "service:agent-*",
    "service:agent-a-*",
    "service:agent-a-1",
    "service:web",
    "tcp:*",
    "tcp:10.0.0.5:*",
    "tcp:10.0.0.5:5432",
];

fn any_perms() -> impl Strategy<Value = Perms> {
    (0u16..512).prop_map(|bits| Perm::ALL.into_iter().filter(|p| bits & (1 << *p as u16) != 0).collect())
}

fn any_resource() -> impl Strategy<Value = String> {
    proptest::sample::select(RESOURCES).prop_map(str::to_owned)
}

/// An expiry relative to NOW: never, or 1 s to 2 h ahead.
fn any_exp() -> impl Strategy<Value = u64> {
    prop_oneof![1 => Just(0u64), 3 => (1..2 * HOUR).prop_map(|d| NOW + d)]
}

fn any_restriction() -> impl Strategy<Value = Restriction> {
    (
        proptest::option::of(any_resource()),
        proptest::option::of(any_perms()),
        proptest::option::of(prop_oneof![Just(0u64), (0..3 * HOUR).prop_map(|d| NOW - HOUR + d)]),
    )
        .prop_map(|(resource, perms, expires_at)| Restriction { subject: None, resource, perms, expires_at })
}

fn any_root() -> impl Strategy<Value = Token> {
    (any_resource(), any_perms(), any_exp())
        .prop_filter_map("no permission", |(res, p, exp)| issue(&key(), "agent-a", &res, p, NOW - HOUR, exp).ok())
}

fn within(c: &Claims, p: &Claims) -> bool {
    c.perms.is_subset(p.perms)
        && resource_narrows(&c.resource, &p.resource)
        && (p.expires_at == 0 || (c.expires_at != 0 && c.expires_at <= p.expires_at))
        && c.issued_at >= p.issued_at
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// attenuate errs or narrows; what it makes always verifies.
    #[test]
    fn attenuate_narrows_and_verifies(parent in any_root(), r in any_restriction()) {
        if let Ok(child) = attenuate(&parent, r, NOW) {
            prop_assert!(within(child.claims(), parent.claims()));
            prop_assert_eq!(child.chain().len(), 2);
            let v = verify(&key(), &child.encode(), NOW, never_revoked);
            prop_assert!(v.is_ok(), "{:?}", v);
        }
    }

    /// Along any chain built by attenuate, the verified effective claims are
    /// within every ancestor's.
    #[test]
    fn verified_claims_are_within_every_ancestor(parent in any_root(), rs in proptest::collection::vec(any_restriction(), 1..MAX_DEPTH)) {
        let mut t = parent;
        for r in rs {
            if let Ok(next) = attenuate(&t, r, NOW) {
                t = next;
            }
        }
        let v = verify(&key(), &t.encode(), NOW, never_revoked).unwrap();
        for a in v.chain() {
            prop_assert!(within(v.claims(), a), "{:?} not within {:?}", v.claims(), a);
        }
    }

    /// A hand-made block verifies iff it is within its parent; a wider one
    /// is always refused as Widened.
    #[test]
    fn hand_made_blocks_verify_iff_narrower(
        parent in any_root(),
        res in any_resource(),
        p in any_perms(),
        iat in (NOW - 2 * HOUR)..NOW,
        exp in any_exp(),
    ) {
        let child = Claims {
            id: "f".repeat(32),
            subject: "agent-a".into(),
            resource: res,
            perms: p,
            issued_at: iat,
            expires_at: exp,
            parent: parent.id().to_owned(),
        };
        let text = append_by_hand(&parent.encode(), &serde_json::to_vec(&child).unwrap());
        let got = verify(&key(), &text, NOW, never_revoked);
        if within(&child, parent.claims()) {
            prop_assert!(got.is_ok(), "{:?}", got);
        } else {
            prop_assert!(matches!(got, Err(Denied::Widened { .. })), "{:?}", got);
        }
    }
}
