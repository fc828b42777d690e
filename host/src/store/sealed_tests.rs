//! [`SealedKv`] over a real sled database: plain text in, ciphertext on
//! disk, plain-text comparisons, and the migrations of `sync_buckets`.

use super::*;
use crate::store::SledStore;

const NS: &str = "clusters";

fn setup() -> (tempfile::TempDir, Arc<SledStore>, Arc<KeyRing>, SealedKv) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let keys = Arc::new(KeyRing::from_keys(&[7; 32], &[]));
    let sealed = SealedKv::new(
        store.clone(),
        keys.clone(),
        vec!["creds".to_string()].into(),
    );
    (dir, store, keys, sealed)
}

fn raw(store: &SledStore, bucket: &str, key: &str) -> Vec<u8> {
    store.get(NS, bucket, key).unwrap().unwrap()
}

#[test]
fn declared_buckets_hold_ciphertext_and_read_back_plain() {
    let (_dir, store, _keys, kv) = setup();
    kv.set(NS, "creds", "10.0.0.1", b"PRIVATE KEY").unwrap();
    kv.set(NS, "hosts", "10.0.0.1", b"{\"status\":\"active\"}")
        .unwrap();
    assert_eq!(
        kv.get(NS, "creds", "10.0.0.1").unwrap().unwrap(),
        b"PRIVATE KEY"
    );
    let on_disk = raw(&store, "creds", "10.0.0.1");
    assert!(on_disk.starts_with(crate::store::keyring::SEALED_MAGIC));
    assert!(!on_disk.windows(7).any(|w| w == b"PRIVATE"));
    // Other buckets are untouched.
    assert_eq!(raw(&store, "hosts", "10.0.0.1"), b"{\"status\":\"active\"}");
    let page = kv.scan(NS, "creds", "10.", None, 10).unwrap();
    assert_eq!(
        page,
        vec![("10.0.0.1".to_string(), b"PRIVATE KEY".to_vec())]
    );
    assert!(kv.delete(NS, "creds", "10.0.0.1").unwrap());
    assert_eq!(kv.get(NS, "creds", "10.0.0.1").unwrap(), None);
    kv.apply(
        NS,
        &[WriteOp {
            bucket: "creds".into(),
            key: "k".into(),
            value: Some(b"batched".to_vec()),
        }],
    )
    .unwrap();
    assert_eq!(kv.get(NS, "creds", "k").unwrap().unwrap(), b"batched");
    assert!(
        !raw(&store, "creds", "k")
            .windows(7)
            .any(|w| w == b"batched")
    );
}

#[test]
fn a_value_moved_to_another_key_or_handler_does_not_open() {
    let (_dir, store, keys, kv) = setup();
    kv.set(NS, "creds", "a", b"secret").unwrap();
    let stolen = raw(&store, "creds", "a");
    store.set(NS, "creds", "b", &stolen).unwrap();
    let err = kv.get(NS, "creds", "b").unwrap_err().to_string();
    assert!(err.contains("does not open"), "{err}");
    let other = SealedKv::new(store.clone(), keys, vec!["creds".to_string()].into());
    store.set("other", "creds", "a", &stolen).unwrap();
    assert!(other.get("other", "creds", "a").is_err());
    // Plain bytes planted in an encrypted bucket are refused, not served.
    store.set(NS, "creds", "planted", b"plain").unwrap();
    assert!(kv.get(NS, "creds", "planted").is_err());
}

#[test]
fn compare_and_swap_and_counters_compare_plain_text() {
    let (_dir, store, _keys, kv) = setup();
    assert!(
        kv.compare_and_swap(NS, "creds", "k", None, Some(b"v1"))
            .unwrap()
    );
    assert!(
        !kv.compare_and_swap(NS, "creds", "k", None, Some(b"v2"))
            .unwrap()
    );
    assert!(
        !kv.compare_and_swap(NS, "creds", "k", Some(b"nope"), Some(b"v2"))
            .unwrap()
    );
    assert!(
        kv.compare_and_swap(NS, "creds", "k", Some(b"v1"), Some(b"v2"))
            .unwrap()
    );
    assert_eq!(kv.get(NS, "creds", "k").unwrap().unwrap(), b"v2");
    assert!(
        kv.compare_and_swap(NS, "creds", "k", Some(b"v2"), None)
            .unwrap()
    );
    assert_eq!(kv.get(NS, "creds", "k").unwrap(), None);
    assert_eq!(kv.increment(NS, "creds", "n", 5).unwrap(), 5);
    assert_eq!(kv.increment(NS, "creds", "n", -2).unwrap(), 3);
    assert_eq!(kv.get(NS, "creds", "n").unwrap().unwrap(), b"3");
    assert_ne!(raw(&store, "creds", "n"), b"3");
    kv.set(NS, "creds", "text", b"abc").unwrap();
    assert!(matches!(
        kv.increment(NS, "creds", "text", 1),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn apply_if_mixes_encrypted_and_plain_buckets_atomically() {
    let (_dir, store, _keys, kv) = setup();
    kv.set(NS, "creds", "k", b"old").unwrap();
    kv.set(NS, "hosts", "h", b"plain").unwrap();
    let expect = |bucket: &str, key: &str, value: &[u8]| Expect {
        bucket: bucket.into(),
        key: key.into(),
        value: Some(value.to_vec()),
    };
    let write = |bucket: &str, key: &str, value: &[u8]| WriteOp {
        bucket: bucket.into(),
        key: key.into(),
        value: Some(value.to_vec()),
    };
    let count = |bucket: &str, key: &str, delta| CountOp {
        bucket: bucket.into(),
        key: key.into(),
        delta,
    };
    // A wrong plain-text expectation of the encrypted key: nothing changes.
    let miss = kv
        .apply_if(
            NS,
            &[expect("creds", "k", b"wrong")],
            &[write("hosts", "h", b"changed")],
            &[count("hosts", "n", 1)],
        )
        .unwrap();
    assert_eq!(miss, None);
    assert_eq!(kv.get(NS, "hosts", "h").unwrap().unwrap(), b"plain");
    // A wrong expectation of the plain key: nothing changes either.
    let miss = kv
        .apply_if(
            NS,
            &[expect("creds", "k", b"old"), expect("hosts", "h", b"wrong")],
            &[write("creds", "k", b"new")],
            &[],
        )
        .unwrap();
    assert_eq!(miss, None);
    assert_eq!(kv.get(NS, "creds", "k").unwrap().unwrap(), b"old");
    // Both hold: writes and counters on both sides, results in order.
    let hit = kv
        .apply_if(
            NS,
            &[expect("creds", "k", b"old"), expect("hosts", "h", b"plain")],
            &[write("creds", "k", b"new"), write("creds", "c", b"10")],
            &[
                count("hosts", "n", 2),
                count("creds", "c", 5),
                count("creds", "c", 1),
                count("hosts", "n", 1),
            ],
        )
        .unwrap();
    assert_eq!(hit, Some(vec![2, 15, 16, 3]));
    assert_eq!(kv.get(NS, "creds", "k").unwrap().unwrap(), b"new");
    assert_eq!(kv.get(NS, "creds", "c").unwrap().unwrap(), b"16");
    assert!(!raw(&store, "creds", "c").windows(2).any(|w| w == b"16"));
}

#[test]
fn concurrent_counters_in_an_encrypted_bucket_lose_nothing() {
    let (_dir, _store, _keys, kv) = setup();
    let kv = Arc::new(kv);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let kv = kv.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    kv.increment(NS, "creds", "n", 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(kv.get(NS, "creds", "n").unwrap().unwrap(), b"200");
}

#[test]
fn sync_seals_plain_data_rekeys_old_keys_and_opens_undeclared_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    // Before the bucket was declared: plain text.
    store.set(NS, "creds", "a", b"plain-a").unwrap();
    store.set(NS, "creds", "b", b"plain-b").unwrap();
    let old = KeyRing::from_keys(&[1; 32], &[]);
    let declared = vec!["creds".to_string()];
    let changed = sync_buckets(&store, &old, NS, &declared).unwrap();
    assert_eq!(changed[0].1.sealed, 2);
    assert!(scrub_pending(&store).unwrap());
    scrub_done(&store).unwrap();
    assert!(old.sealed_by_current(&raw(&store, "creds", "a")));
    // Again: nothing to do.
    assert!(
        sync_buckets(&store, &old, NS, &declared)
            .unwrap()
            .is_empty()
    );
    // Rotation: the new key with the old one as previous re-seals.
    let rotated = KeyRing::from_keys(&[2; 32], &[[1; 32]]);
    let changed = sync_buckets(&store, &rotated, NS, &declared).unwrap();
    assert_eq!(changed[0].1.rekeyed, 2);
    assert!(scrub_pending(&store).unwrap());
    assert!(rotated.sealed_by_current(&raw(&store, "creds", "b")));
    // The old key can go now.
    let new_only = KeyRing::from_keys(&[2; 32], &[]);
    let kv = SealedKv::new(
        Arc::new(store.clone()),
        Arc::new(KeyRing::from_keys(&[2; 32], &[])),
        declared.clone().into(),
    );
    assert_eq!(kv.get(NS, "creds", "a").unwrap().unwrap(), b"plain-a");
    // A ring without the sealing key stops, naming it.
    let stranger = KeyRing::from_keys(&[3; 32], &[]);
    let err = sync_buckets(&store, &stranger, NS, &declared)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&new_only.current_id()), "{err}");
    assert!(err.contains("previous_encryption_keys"), "{err}");
    // No longer declared: opened for good.
    let changed = sync_buckets(&store, &new_only, NS, &[]).unwrap();
    assert_eq!(changed[0].1.opened, 2);
    assert_eq!(raw(&store, "creds", "b"), b"plain-b");
    assert!(sync_buckets(&store, &new_only, NS, &[]).unwrap().is_empty());
}

#[test]
fn over_long_keys_in_an_encrypted_bucket_are_refused_as_in_a_plain_one() {
    let (_dir, _store, _keys, kv) = setup();
    let long = "k".repeat(crate::store::MAX_KEY_LEN + 1);
    let refused = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Invalid(m)) if m.contains("key is"));
    assert!(refused(kv.set(NS, "creds", &long, b"v")));
    assert!(refused(kv.get(NS, "creds", &long).map(drop)));
    let swapped = kv.compare_and_swap(NS, "creds", &long, None, Some(b"v"));
    assert!(refused(swapped.map(drop)));
    assert!(refused(kv.increment(NS, "creds", &long, 1).map(drop)));
    let write = WriteOp {
        bucket: "creds".into(),
        key: long.clone(),
        value: Some(b"v".to_vec()),
    };
    assert!(refused(kv.apply(NS, std::slice::from_ref(&write))));
    assert!(refused(kv.apply_if(NS, &[], &[write], &[]).map(drop)));
}
