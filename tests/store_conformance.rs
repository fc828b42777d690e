//! One conformance suite for every storage backend: the same cases run
//! against sled in a temporary directory and against a private PostgreSQL
//! server (tests/support/postgres.rs), so that a handler sees the same kv
//! semantics whichever backend its server runs on.

mod support;

use baton::store::{
    CountOp, Expect, KvStore, MAX_SCAN, MAX_VALUE_LEN, PgStore, SledStore, StoreError, WriteOp,
};
use std::sync::Arc;

/// A backend under test: it can be opened, dropped and opened again.
trait Backend: Send + Sync {
    /// Opens the store (again).
    fn open(&self) -> impl std::future::Future<Output = Arc<dyn KvStore>> + Send;
}

/// sled in a temporary directory.
struct Sled(tempfile::TempDir);

impl Backend for Sled {
    async fn open(&self) -> Arc<dyn KvStore> {
        Arc::new(SledStore::open(self.0.path()).unwrap())
    }
}

fn sled() -> Sled {
    Sled(tempfile::tempdir().unwrap())
}

/// A fresh database on the test process's PostgreSQL server.
struct Postgres(String);

impl Backend for Postgres {
    async fn open(&self) -> Arc<dyn KvStore> {
        Arc::new(PgStore::connect(&self.0).await.unwrap())
    }
}

fn postgres() -> Postgres {
    Postgres(support::postgres::database())
}

/// Each case, once per backend.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod on_sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(&super::sled()).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(&super::postgres()).await;
                }
            )*
        }
    };
}

conformance!(
    namespaces_and_buckets_are_isolated,
    scan_pages_with_start_after_and_prefix,
    scan_orders_keys_bytewise_and_takes_prefixes_literally,
    scan_returns_at_most_the_cap,
    compare_and_swap_honours_expected,
    increment_counts_and_refuses_what_is_not_a_counter,
    concurrent_increments_hand_out_every_number_once,
    apply_is_all_or_nothing,
    apply_if_writes_and_counts_only_when_every_expectation_holds,
    concurrent_read_modify_writes_through_apply_if_lose_nothing,
    of_writers_expecting_a_key_absent_exactly_one_creates_it,
    limits_are_enforced_before_anything_is_written,
    binary_values_and_odd_keys_round_trip,
    committed_data_survives_reopening,
);

fn op(bucket: &str, key: &str, value: Option<&[u8]>) -> WriteOp {
    WriteOp {
        bucket: bucket.into(),
        key: key.into(),
        value: value.map(<[u8]>::to_vec),
    }
}

fn keys(page: Vec<(String, Vec<u8>)>) -> Vec<String> {
    page.into_iter().map(|(k, _)| k).collect()
}

async fn namespaces_and_buckets_are_isolated(b: &impl Backend) {
    let s = b.open().await;
    s.set("a", "b", "k", b"1").await.unwrap();
    assert_eq!(
        s.get("a", "b", "k").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(s.get("a", "c", "k").await.unwrap(), None);
    assert_eq!(s.get("z", "b", "k").await.unwrap(), None);
    // A bucket whose name is a prefix of another's does not leak into it.
    s.set("a", "bb", "k", b"2").await.unwrap();
    assert_eq!(s.scan("a", "b", "", None, 10).await.unwrap().len(), 1);
    assert!(s.delete("a", "b", "k").await.unwrap());
    assert!(!s.delete("a", "b", "k").await.unwrap());
    assert_eq!(
        s.get("a", "bb", "k").await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
}

async fn scan_pages_with_start_after_and_prefix(b: &impl Backend) {
    let s = b.open().await;
    for k in ["n1", "n2", "n3", "m1"] {
        s.set("ns", "b", k, k.as_bytes()).await.unwrap();
    }
    let scan = |prefix: &'static str, after: Option<&'static str>, limit| {
        let s = s.clone();
        async move { keys(s.scan("ns", "b", prefix, after, limit).await.unwrap()) }
    };
    assert_eq!(scan("n", None, 2).await, ["n1", "n2"]);
    assert_eq!(scan("n", Some("n2"), 2).await, ["n3"]);
    assert_eq!(scan("n", Some("a"), 5).await, ["n1", "n2", "n3"]);
    assert_eq!(scan("", Some("n3"), 5).await, Vec::<String>::new());
    assert_eq!(scan("", None, 0).await, Vec::<String>::new());
    // The values come with their keys.
    let page = s.scan("ns", "b", "m", None, 5).await.unwrap();
    assert_eq!(page, vec![("m1".to_string(), b"m1".to_vec())]);
}

async fn scan_orders_keys_bytewise_and_takes_prefixes_literally(b: &impl Backend) {
    let s = b.open().await;
    let all = [
        "b", "B", "a", "aa", "a\u{7f}", "é", "", "a%b", "a_b", "axb", "a b", "Z",
    ];
    for k in all {
        s.set("ns", "order", k, k.as_bytes()).await.unwrap();
    }
    let mut expected: Vec<&str> = all.to_vec();
    expected.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    assert_eq!(
        keys(s.scan("ns", "order", "", None, 100).await.unwrap()),
        expected
    );
    // `%` and `_` are characters, not patterns.
    assert_eq!(
        keys(s.scan("ns", "order", "a%", None, 100).await.unwrap()),
        ["a%b"]
    );
    assert_eq!(
        keys(s.scan("ns", "order", "a_", None, 100).await.unwrap()),
        ["a_b"]
    );
    // A prefix ending in the highest code point still bounds the scan.
    s.set("ns", "order", "é1", b"x").await.unwrap();
    assert_eq!(
        keys(s.scan("ns", "order", "é", None, 100).await.unwrap()),
        ["é", "é1"]
    );
}

async fn scan_returns_at_most_the_cap(b: &impl Backend) {
    let s = b.open().await;
    let ops: Vec<WriteOp> = (0..MAX_SCAN + 5)
        .map(|i| op("many", &format!("k{i:05}"), Some(b"v")))
        .collect();
    s.apply("ns", &ops).await.unwrap();
    let page = s.scan("ns", "many", "k", None, usize::MAX).await.unwrap();
    assert_eq!(page.len(), MAX_SCAN);
    let last = page.last().unwrap().0.clone();
    let rest = s
        .scan("ns", "many", "k", Some(&last), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        keys(rest),
        ["k01000", "k01001", "k01002", "k01003", "k01004"]
    );
    // Page after page, everything.
    let all = baton::store::scan_all(&*s, "ns", "many", "k")
        .await
        .unwrap();
    assert_eq!(all.len(), MAX_SCAN + 5);
    assert_eq!(all.last().unwrap().0, "k01004");
}

async fn compare_and_swap_honours_expected(b: &impl Backend) {
    let s = b.open().await;
    // Absent expected absent: holds, and writing nothing leaves it absent.
    assert!(s.compare_and_swap("n", "b", "k", None, None).await.unwrap());
    assert_eq!(s.get("n", "b", "k").await.unwrap(), None);
    assert!(
        s.compare_and_swap("n", "b", "k", None, Some(b"1"))
            .await
            .unwrap()
    );
    assert!(
        !s.compare_and_swap("n", "b", "k", None, Some(b"2"))
            .await
            .unwrap()
    );
    assert!(!s.compare_and_swap("n", "b", "k", None, None).await.unwrap());
    assert!(
        !s.compare_and_swap("n", "b", "k", Some(b"2"), Some(b"3"))
            .await
            .unwrap()
    );
    assert!(
        s.compare_and_swap("n", "b", "k", Some(b"1"), Some(b"2"))
            .await
            .unwrap()
    );
    assert_eq!(
        s.get("n", "b", "k").await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
    assert!(
        !s.compare_and_swap("n", "b", "k", Some(b"1"), None)
            .await
            .unwrap()
    );
    assert!(
        s.compare_and_swap("n", "b", "k", Some(b"2"), None)
            .await
            .unwrap()
    );
    assert_eq!(s.get("n", "b", "k").await.unwrap(), None);
    assert!(
        !s.compare_and_swap("n", "b", "k", Some(b"2"), Some(b"4"))
            .await
            .unwrap()
    );
}

async fn increment_counts_and_refuses_what_is_not_a_counter(b: &impl Backend) {
    let s = b.open().await;
    assert_eq!(s.increment("n", "seq", "job", 1).await.unwrap(), 1);
    assert_eq!(s.increment("n", "seq", "job", 1).await.unwrap(), 2);
    assert_eq!(s.increment("n", "seq", "job", -5).await.unwrap(), -3);
    assert_eq!(s.get("n", "seq", "job").await.unwrap().unwrap(), b"-3");
    assert_eq!(s.increment("n", "seq", "fresh", 0).await.unwrap(), 0);
    s.set("n", "seq", "signed", b"+41").await.unwrap();
    assert_eq!(s.increment("n", "seq", "signed", 1).await.unwrap(), 42);
    for bad in [
        &b"hello"[..],
        b" 5",
        b"5 ",
        b"",
        b"1.5",
        b"\xff\xfe",
        b"0x10",
    ] {
        s.set("n", "seq", "text", bad).await.unwrap();
        let err = s.increment("n", "seq", "text", 1).await;
        assert!(
            matches!(&err, Err(StoreError::Invalid(m)) if m.contains("decimal counter")),
            "{bad:?}: {err:?}"
        );
        // Refused, so unchanged.
        assert_eq!(s.get("n", "seq", "text").await.unwrap().unwrap(), bad);
    }
    s.set("n", "seq", "max", i64::MAX.to_string().as_bytes())
        .await
        .unwrap();
    let err = s.increment("n", "seq", "max", 1).await;
    assert!(
        matches!(&err, Err(StoreError::Invalid(m)) if m.contains("overflow")),
        "{err:?}"
    );
    assert_eq!(
        s.increment("n", "seq", "max", -1).await.unwrap(),
        i64::MAX - 1
    );
}

async fn concurrent_increments_hand_out_every_number_once(b: &impl Backend) {
    let s = b.open().await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..25 {
                    got.push(s.increment("orchestrator", "seq", "job", 1).await.unwrap());
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (1..=200).collect::<Vec<i64>>());
}

async fn apply_is_all_or_nothing(b: &impl Backend) {
    let s = b.open().await;
    s.set("n", "a", "gone", b"x").await.unwrap();
    s.apply(
        "n",
        &[
            op("a", "k", Some(b"1")),
            op("b", "k", Some(b"2")),
            op("a", "gone", None),
            op("a", "twice", Some(b"first")),
            op("a", "twice", Some(b"second")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        s.get("n", "a", "k").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        s.get("n", "b", "k").await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(s.get("n", "a", "gone").await.unwrap(), None);
    // The later of two writes to one key wins.
    assert_eq!(s.get("n", "a", "twice").await.unwrap().unwrap(), b"second");
    // An invalid op anywhere means nothing is written.
    let err = s
        .apply("n", &[op("a", "new", Some(b"1")), op("", "k", Some(b"2"))])
        .await;
    assert!(matches!(err, Err(StoreError::Invalid(_))), "{err:?}");
    assert_eq!(s.get("n", "a", "new").await.unwrap(), None);
    s.apply("n", &[]).await.unwrap();
}

async fn apply_if_writes_and_counts_only_when_every_expectation_holds(b: &impl Backend) {
    let s = b.open().await;
    s.set("h", "nodes", "web-1", b"ready").await.unwrap();
    let expect = |v: &[u8]| Expect {
        bucket: "nodes".into(),
        key: "web-1".into(),
        value: Some(v.to_vec()),
    };
    let writes = [
        op("nodes", "web-1", Some(b"running")),
        op("by-state", "ready/web-1", None),
    ];
    let counts = |d: i64| {
        [
            CountOp {
                bucket: "tally".into(),
                key: "running".into(),
                delta: d,
            },
            CountOp {
                bucket: "tally".into(),
                key: "ready".into(),
                delta: -d,
            },
        ]
    };
    s.set("h", "by-state", "ready/web-1", b"").await.unwrap();
    assert_eq!(
        s.apply_if("h", &[expect(b"ready")], &writes, &counts(1))
            .await
            .unwrap(),
        Some(vec![1, -1])
    );
    assert_eq!(
        s.get("h", "nodes", "web-1").await.unwrap().unwrap(),
        b"running"
    );
    assert_eq!(s.get("h", "by-state", "ready/web-1").await.unwrap(), None);
    // The record moved on: a second swap from `ready` changes nothing.
    assert_eq!(
        s.apply_if("h", &[expect(b"ready")], &writes, &counts(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.get("h", "tally", "running").await.unwrap().unwrap(), b"1");
    // A counter written in the same batch counts from what was written.
    assert_eq!(
        s.apply_if(
            "h",
            &[],
            &[op("tally", "fresh", Some(b"10"))],
            &[CountOp {
                bucket: "tally".into(),
                key: "fresh".into(),
                delta: 5
            }],
        )
        .await
        .unwrap(),
        Some(vec![15])
    );
    // An expected absence, and a counter that is not one: nothing written.
    s.set("h", "tally", "bad", b"x").await.unwrap();
    let absent = Expect {
        bucket: "nodes".into(),
        key: "web-2".into(),
        value: None,
    };
    let bad = CountOp {
        bucket: "tally".into(),
        key: "bad".into(),
        delta: 1,
    };
    let err = s
        .apply_if(
            "h",
            std::slice::from_ref(&absent),
            &[op("nodes", "web-1", Some(b"lost"))],
            &[bad],
        )
        .await;
    assert!(matches!(err, Err(StoreError::Invalid(_))), "{err:?}");
    assert_eq!(
        s.get("h", "nodes", "web-1").await.unwrap().unwrap(),
        b"running"
    );
    // An expected absence that holds.
    assert_eq!(
        s.apply_if("h", &[absent], &[op("nodes", "web-2", Some(b"new"))], &[])
            .await
            .unwrap(),
        Some(vec![])
    );
}

async fn concurrent_read_modify_writes_through_apply_if_lose_nothing(b: &impl Backend) {
    let s = b.open().await;
    s.set("n", "acct", "a", b"0").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                for _ in 0..15 {
                    loop {
                        let now = s.get("n", "acct", "a").await.unwrap();
                        let n: i64 = std::str::from_utf8(now.as_deref().unwrap())
                            .unwrap()
                            .parse()
                            .unwrap();
                        let done = s
                            .apply_if(
                                "n",
                                &[Expect {
                                    bucket: "acct".into(),
                                    key: "a".into(),
                                    value: now,
                                }],
                                &[op("acct", "a", Some((n + 1).to_string().as_bytes()))],
                                &[CountOp {
                                    bucket: "acct".into(),
                                    key: "moves".into(),
                                    delta: 1,
                                }],
                            )
                            .await
                            .unwrap();
                        if done.is_some() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.get("n", "acct", "a").await.unwrap().unwrap(), b"120");
    assert_eq!(s.get("n", "acct", "moves").await.unwrap().unwrap(), b"120");
}

async fn of_writers_expecting_a_key_absent_exactly_one_creates_it(b: &impl Backend) {
    let s = b.open().await;
    for round in 0..5 {
        let key = format!("lock-{round}");
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let (s, key) = (s.clone(), key.clone());
                tokio::spawn(async move {
                    let absent = Expect {
                        bucket: "locks".into(),
                        key: key.clone(),
                        value: None,
                    };
                    let won = s
                        .apply_if(
                            "n",
                            &[absent],
                            &[op("locks", &key, Some(format!("{t}").as_bytes()))],
                            &[CountOp {
                                bucket: "locks".into(),
                                key: "taken".into(),
                                delta: 1,
                            }],
                        )
                        .await
                        .unwrap();
                    won.map(|_| t)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            winners.extend(t.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let held = s.get("n", "locks", &key).await.unwrap().unwrap();
        assert_eq!(held, winners[0].to_string().into_bytes());
    }
    assert_eq!(s.get("n", "locks", "taken").await.unwrap().unwrap(), b"5");
}

async fn limits_are_enforced_before_anything_is_written(b: &impl Backend) {
    let s = b.open().await;
    let invalid =
        |r: Result<(), StoreError>| assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    invalid(s.set("n", "", "k", b"v").await);
    invalid(s.set("n", "b\0c", "k", b"v").await);
    invalid(s.set("n", &"b".repeat(200), "k", b"v").await);
    invalid(s.set("n", "b", &"k".repeat(2000), b"v").await);
    invalid(s.set("n", "b", "k", &vec![0u8; MAX_VALUE_LEN + 1]).await);
    invalid(s.set("", "b", "k", b"v").await);
    invalid(s.set("n\0", "b", "k", b"v").await);
    assert!(matches!(
        s.get("", "b", "k").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.compare_and_swap("n", "b", "k", None, Some(&vec![0u8; MAX_VALUE_LEN + 1]))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.apply_if("n", &[], &[op("", "k", Some(b"v"))], &[]).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.scan("n", "b", "", None, 10).await.unwrap(), vec![]);
}

async fn binary_values_and_odd_keys_round_trip(b: &impl Backend) {
    let s = b.open().await;
    let value: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    for key in ["", "with\0nul", "ключ", "a/b/c", "'; DROP TABLE kv; --"] {
        s.set("n", "bin", key, &value).await.unwrap();
        assert_eq!(
            s.get("n", "bin", key).await.unwrap().as_deref(),
            Some(&value[..]),
            "{key:?}"
        );
    }
    assert_eq!(s.scan("n", "bin", "", None, 10).await.unwrap().len(), 5);
    s.set("n", "bin", "empty", b"").await.unwrap();
    assert_eq!(
        s.get("n", "bin", "empty").await.unwrap().as_deref(),
        Some(&b""[..])
    );
    s.set("n", "bin", "big", &vec![7u8; MAX_VALUE_LEN])
        .await
        .unwrap();
    assert_eq!(
        s.get("n", "bin", "big").await.unwrap().unwrap().len(),
        MAX_VALUE_LEN
    );
}

async fn committed_data_survives_reopening(b: &impl Backend) {
    {
        let s = b.open().await;
        s.set("n", "b", "k", b"kept").await.unwrap();
        s.increment("n", "b", "c", 7).await.unwrap();
        s.commit().await.unwrap();
    }
    let s = b.open().await;
    assert_eq!(
        s.get("n", "b", "k").await.unwrap().as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(s.increment("n", "b", "c", 1).await.unwrap(), 8);
}
