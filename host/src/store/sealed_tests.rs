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

async fn raw(store: &SledStore, bucket: &str, key: &str) -> Vec<u8> {
    store.get(NS, bucket, key).await.unwrap().unwrap()
}

#[tokio::test]
async fn declared_buckets_hold_ciphertext_and_read_back_plain() {
    let (_dir, store, _keys, kv) = setup();
    kv.set(NS, "creds", "10.0.0.1", b"PRIVATE KEY")
        .await
        .unwrap();
    kv.set(NS, "hosts", "10.0.0.1", b"{\"status\":\"active\"}")
        .await
        .unwrap();
    assert_eq!(
        kv.get(NS, "creds", "10.0.0.1").await.unwrap().unwrap(),
        b"PRIVATE KEY"
    );
    let on_disk = raw(&store, "creds", "10.0.0.1").await;
    assert!(on_disk.starts_with(crate::store::keyring::SEALED_MAGIC));
    assert!(!on_disk.windows(7).any(|w| w == b"PRIVATE"));
    // Other buckets are untouched.
    assert_eq!(
        raw(&store, "hosts", "10.0.0.1").await,
        b"{\"status\":\"active\"}"
    );
    let page = kv.scan(NS, "creds", "10.", None, 10).await.unwrap();
    assert_eq!(
        page,
        vec![("10.0.0.1".to_string(), b"PRIVATE KEY".to_vec())]
    );
    assert!(kv.delete(NS, "creds", "10.0.0.1").await.unwrap());
    assert_eq!(kv.get(NS, "creds", "10.0.0.1").await.unwrap(), None);
    kv.apply(
        NS,
        &[WriteOp {
            bucket: "creds".into(),
            key: "k".into(),
            value: Some(b"batched".to_vec()),
        }],
    )
    .await
    .unwrap();
    assert_eq!(kv.get(NS, "creds", "k").await.unwrap().unwrap(), b"batched");
    assert!(
        !raw(&store, "creds", "k")
            .await
            .windows(7)
            .any(|w| w == b"batched")
    );
}

#[tokio::test]
async fn a_value_moved_to_another_key_or_handler_does_not_open() {
    let (_dir, store, keys, kv) = setup();
    kv.set(NS, "creds", "a", b"secret").await.unwrap();
    let stolen = raw(&store, "creds", "a").await;
    store.set(NS, "creds", "b", &stolen).await.unwrap();
    let err = kv.get(NS, "creds", "b").await.unwrap_err().to_string();
    assert!(err.contains("does not open"), "{err}");
    let other = SealedKv::new(store.clone(), keys, vec!["creds".to_string()].into());
    store.set("other", "creds", "a", &stolen).await.unwrap();
    assert!(other.get("other", "creds", "a").await.is_err());
    // Plain bytes planted in an encrypted bucket are refused, not served.
    store.set(NS, "creds", "planted", b"plain").await.unwrap();
    assert!(kv.get(NS, "creds", "planted").await.is_err());
}

#[tokio::test]
async fn compare_and_swap_and_counters_compare_plain_text() {
    let (_dir, store, _keys, kv) = setup();
    assert!(
        kv.compare_and_swap(NS, "creds", "k", None, Some(b"v1"))
            .await
            .unwrap()
    );
    assert!(
        !kv.compare_and_swap(NS, "creds", "k", None, Some(b"v2"))
            .await
            .unwrap()
    );
    assert!(
        !kv.compare_and_swap(NS, "creds", "k", Some(b"nope"), Some(b"v2"))
            .await
            .unwrap()
    );
    assert!(
        kv.compare_and_swap(NS, "creds", "k", Some(b"v1"), Some(b"v2"))
            .await
            .unwrap()
    );
    assert_eq!(kv.get(NS, "creds", "k").await.unwrap().unwrap(), b"v2");
    assert!(
        kv.compare_and_swap(NS, "creds", "k", Some(b"v2"), None)
            .await
            .unwrap()
    );
    assert_eq!(kv.get(NS, "creds", "k").await.unwrap(), None);
    assert_eq!(kv.increment(NS, "creds", "n", 5).await.unwrap(), 5);
    assert_eq!(kv.increment(NS, "creds", "n", -2).await.unwrap(), 3);
    assert_eq!(kv.get(NS, "creds", "n").await.unwrap().unwrap(), b"3");
    assert_ne!(raw(&store, "creds", "n").await, b"3");
    kv.set(NS, "creds", "text", b"abc").await.unwrap();
    assert!(matches!(
        kv.increment(NS, "creds", "text", 1).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn apply_if_mixes_encrypted_and_plain_buckets_atomically() {
    let (_dir, store, _keys, kv) = setup();
    kv.set(NS, "creds", "k", b"old").await.unwrap();
    kv.set(NS, "hosts", "h", b"plain").await.unwrap();
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
        .await
        .unwrap();
    assert_eq!(miss, None);
    assert_eq!(kv.get(NS, "hosts", "h").await.unwrap().unwrap(), b"plain");
    // A wrong expectation of the plain key: nothing changes either.
    let miss = kv
        .apply_if(
            NS,
            &[expect("creds", "k", b"old"), expect("hosts", "h", b"wrong")],
            &[write("creds", "k", b"new")],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(miss, None);
    assert_eq!(kv.get(NS, "creds", "k").await.unwrap().unwrap(), b"old");
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
        .await
        .unwrap();
    assert_eq!(hit, Some(vec![2, 15, 16, 3]));
    assert_eq!(kv.get(NS, "creds", "k").await.unwrap().unwrap(), b"new");
    assert_eq!(kv.get(NS, "creds", "c").await.unwrap().unwrap(), b"16");
    assert!(
        !raw(&store, "creds", "c")
            .await
            .windows(2)
            .any(|w| w == b"16")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_counters_in_an_encrypted_bucket_lose_nothing() {
    let (_dir, _store, _keys, kv) = setup();
    let kv = Arc::new(kv);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    kv.increment(NS, "creds", "n", 1).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(kv.get(NS, "creds", "n").await.unwrap().unwrap(), b"200");
}

#[tokio::test]
async fn sync_seals_plain_data_rekeys_old_keys_and_opens_undeclared_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    // Before the bucket was declared: plain text.
    store.set(NS, "creds", "a", b"plain-a").await.unwrap();
    store.set(NS, "creds", "b", b"plain-b").await.unwrap();
    let old = KeyRing::from_keys(&[1; 32], &[]);
    let declared = vec!["creds".to_string()];
    let changed = sync_buckets(&store, &old, NS, &declared).await.unwrap();
    assert_eq!(changed[0].1.sealed, 2);
    assert!(scrub_pending(&store).await.unwrap());
    scrub_done(&store).await.unwrap();
    assert!(old.sealed_by_current(&raw(&store, "creds", "a").await));
    // Again: nothing to do.
    assert!(
        sync_buckets(&store, &old, NS, &declared)
            .await
            .unwrap()
            .is_empty()
    );
    // Rotation: the new key with the old one as previous re-seals.
    let rotated = KeyRing::from_keys(&[2; 32], &[[1; 32]]);
    let changed = sync_buckets(&store, &rotated, NS, &declared).await.unwrap();
    assert_eq!(changed[0].1.rekeyed, 2);
    assert!(scrub_pending(&store).await.unwrap());
    assert!(rotated.sealed_by_current(&raw(&store, "creds", "b").await));
    // The old key can go now.
    let new_only = KeyRing::from_keys(&[2; 32], &[]);
    let kv = SealedKv::new(
        Arc::new(store.clone()),
        Arc::new(KeyRing::from_keys(&[2; 32], &[])),
        declared.clone().into(),
    );
    assert_eq!(kv.get(NS, "creds", "a").await.unwrap().unwrap(), b"plain-a");
    // A ring without the sealing key stops, naming it.
    let stranger = KeyRing::from_keys(&[3; 32], &[]);
    let err = sync_buckets(&store, &stranger, NS, &declared)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&new_only.current_id()), "{err}");
    assert!(err.contains("previous_encryption_keys"), "{err}");
    // No longer declared: opened for good.
    let changed = sync_buckets(&store, &new_only, NS, &[]).await.unwrap();
    assert_eq!(changed[0].1.opened, 2);
    assert_eq!(raw(&store, "creds", "b").await, b"plain-b");
    assert!(
        sync_buckets(&store, &new_only, NS, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn over_long_keys_in_an_encrypted_bucket_are_refused_as_in_a_plain_one() {
    let (_dir, _store, _keys, kv) = setup();
    let long = "k".repeat(crate::store::MAX_KEY_LEN + 1);
    let refused = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Invalid(m)) if m.contains("key is"));
    assert!(refused(kv.set(NS, "creds", &long, b"v").await));
    assert!(refused(kv.get(NS, "creds", &long).await.map(drop)));
    let swapped = kv
        .compare_and_swap(NS, "creds", &long, None, Some(b"v"))
        .await;
    assert!(refused(swapped.map(drop)));
    assert!(refused(kv.increment(NS, "creds", &long, 1).await.map(drop)));
    let write = WriteOp {
        bucket: "creds".into(),
        key: long.clone(),
        value: Some(b"v".to_vec()),
    };
    assert!(refused(kv.apply(NS, std::slice::from_ref(&write)).await));
    assert!(refused(kv.apply_if(NS, &[], &[write], &[]).await.map(drop)));
}
