//! The keyring and the envelope: round trips, rotation, tampering, key files.
use super::*;

fn key(b: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([b; 32])
}

fn ring(ids: &[(&str, u8)]) -> Keyring {
    let text: String = ids
        .iter()
        .map(|(id, b)| format!("{id}:{}\n", key(*b)))
        .collect();
    Keyring::parse(&text).unwrap()
}

#[test]
fn round_trip_with_a_fresh_nonce_each_time() {
    let k = ring(&[("k1", 1)]);
    let a = k.encrypt(b"secret");
    let b = k.encrypt(b"secret");
    assert_ne!(a, b, "random nonce per value");
    assert!(is_encrypted(&a) && k.is_current(&a));
    assert_eq!(key_id_of(&a), Some("k1"));
    assert_eq!(k.decrypt(&a).unwrap(), b"secret");
    assert!(!a.windows(6).any(|w| w == b"secret"));
}

#[test]
fn rotation_encrypts_with_the_first_and_decrypts_with_any() {
    let old = ring(&[("k1", 1)]).encrypt(b"x");
    let both = ring(&[("k2", 2), ("k1", 1)]);
    assert_eq!(both.decrypt(&old).unwrap(), b"x");
    assert!(!both.is_current(&old));
    assert_eq!(key_id_of(&both.encrypt(b"x")), Some("k2"));
    let only_new = ring(&[("k2", 2)]);
    assert_eq!(
        only_new.decrypt(&old),
        Err(DecryptError::MissingKey("k1".into()))
    );
    assert_eq!(
        open(None, &old).unwrap_err().to_string(),
        "encrypted with key k1, which this worker does not hold"
    );
}

#[test]
fn tampering_anywhere_is_refused() {
    let k = ring(&[("k1", 1), ("k2", 1)]);
    let v = k.encrypt(b"payload");
    for i in 0..v.len() {
        let mut t = v.clone();
        t[i] ^= 1;
        assert!(k.decrypt(&t).is_err(), "byte {i} flipped was accepted");
    }
    // Same key bytes under another id: the id is authenticated.
    let mut renamed = v.clone();
    renamed[7] = b'2';
    assert_eq!(
        k.decrypt(&renamed),
        Err(DecryptError::Tampered("k2".into()))
    );
    assert!(matches!(
        k.decrypt(&v[..20]),
        Err(DecryptError::Malformed(_))
    ));
}

#[test]
fn plaintext_passes_through_open() {
    let mp = rmp_serde::to_vec_named(&serde_json::json!({"a": 1})).unwrap();
    assert!(!is_encrypted(&mp) && !is_encrypted(b"plain error"));
    assert_eq!(&*open(Some(&ring(&[("k", 1)])), &mp).unwrap(), &mp[..]);
    assert_eq!(&*open(None, b"plain").unwrap(), b"plain");
}

#[test]
fn bad_key_files_are_refused_without_echoing_keys() {
    let k32 = key(7);
    for (text, want) in [
        ("", "none given"),
        ("# only a comment\n\n", "none given"),
        ("nocolon", "line 1"),
        (&format!("bad id!:{k32}"), "contains"),
        ("k:!!!notbase64", "not valid base64"),
        ("k:AAAA", "3 bytes"),
        (&format!("k:{k32}\nk:{k32}"), "given twice"),
    ] {
        let e = Keyring::parse(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text:?}: {e}");
        assert!(!e.contains(&k32), "{e}");
    }
    let k = Keyring::parse(&format!("# keys\n\n a : {k32} \nb:{}\n", key(8))).unwrap();
    assert_eq!(k.key_ids(), ["a", "b"]);
    let dbg = format!("{k:?}");
    assert!(dbg.contains("\"a\"") && !dbg.contains(&k32), "{dbg}");
}
